# sigil's own image: a static (musl) build of the `sigil` binary on distroless/static, running as
# the distroless non-root user (65532). Build from the repository root:
#
#   docker build -t sigil:latest .
#
# The default command serves the admission webhook as deploy/deployment.yaml runs it (its args
# override this CMD); `docker run sigil:latest serve --help` etc. run the other commands.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN case "$(uname -m)" in \
      x86_64) echo x86_64-unknown-linux-musl > /rust-target ;; \
      aarch64) echo aarch64-unknown-linux-musl > /rust-target ;; \
      *) echo "unsupported architecture $(uname -m)" >&2; exit 1 ;; \
    esac \
 && rustup target add "$(cat /rust-target)"
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sigil --target "$(cat /rust-target)" \
 && install -D -m 0755 "target/$(cat /rust-target)/release/sigil" /out/sigil

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sigil /usr/local/bin/sigil
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/sigil"]
CMD ["webhook", "serve", "--addr=0.0.0.0:8443", "--policies=/etc/sigil/policies", \
     "--tls-cert=/etc/sigil/tls/tls.crt", "--tls-key=/etc/sigil/tls/tls.key"]
