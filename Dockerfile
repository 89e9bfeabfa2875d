# Switchyard's server image. Build: docker build -t switchyard .
# Run:   docker run -p 8080:8080 -v $PWD/my-config:/etc/switchyard:ro switchyard
# (see docs/operations.md, "A fleet in containers", for three replicas,
# Redis, a shared log root and a load balancer: docs/fleet/compose.yaml).

# Build stage: Go with cgo (ONNX Runtime is called through cgo) and npm, which
# fetches ONNX Runtime's shared library from the npm registry's
# onnxruntime-node package, checksum-pinned by the Makefile.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make ort && CGO_ENABLED=1 go build -trimpath -o /out/switchyard ./cmd/switchyard \
    && cp .ort/libonnxruntime.so.1 /out/

# Run stage: glibc (the library and the binary need it), CA certificates (for
# rediss:// and object stores), a user without privileges.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/switchyard --create-home switchyard \
    && install -d -o switchyard -g switchyard /var/lib/switchyard/logs /var/lib/switchyard/logs-staging /var/lib/switchyard/model
COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY --from=build /out/libonnxruntime.so.1 /usr/local/lib/switchyard/libonnxruntime.so.1
ENV SWITCHYARD_ORT_LIB=/usr/local/lib/switchyard/libonnxruntime.so.1
USER 10001:10001
WORKDIR /var/lib/switchyard
EXPOSE 8080
# Liveness: GET /healthz. Readiness: GET /readyz (200 ready or degraded,
# 503 without a predictor; the port answers only once the predictor is
# loaded and the logs are open).
ENTRYPOINT ["switchyard"]
CMD ["serve", "--addr", ":8080", "--config", "/etc/switchyard/config.json", "--logs", "/var/lib/switchyard/logs"]
