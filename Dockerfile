# syntax=docker/dockerfile:1
# The orderflow binary in a small image. docker-compose.yml builds it; the native path
# (make run) needs none of this.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer stays cached while only source files change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (CGO off) so it runs on distroless/static, which has no libc.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/orderflow ./cmd/orderflow

# No shell, no package manager: little to attack, nothing to patch but the binary.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/orderflow /orderflow
# distroless's "nonroot" user; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
ENV ORDERFLOW_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/orderflow"]
CMD ["serve"]
