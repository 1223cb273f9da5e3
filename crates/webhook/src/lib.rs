//! Kubernetes admission webhook (AdmissionReview v1 over HTTPS) running the image-verification engine.
