# syntax=docker/dockerfile:1
#
#   docker build -t abgate .
#   docker run --env-file deploy/.env -e ABGATE_REDIS_ADDR=redis:6379 \
#     -p 8080:8080 -p 127.0.0.1:8081:8081 abgate
#
# The image runs `abgate serve` with /etc/abgate/abgate.yaml, a copy of
# deploy/abgate.yaml: it listens on 0.0.0.0:8080 (proxy) and 0.0.0.0:8081
# (admin), and takes every secret from the environment. Mount your own
# config over /etc/abgate/abgate.yaml, or pass `serve --config PATH`.
# docs/deploy.md has the details.

# Build: a static binary, no cgo, cross-compiled for the target platform
# (docker buildx build --platform linux/amd64,linux/arm64 .).
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -tags nomsgpack -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/abgate ./cmd/abgate

# Run: distroless static (no shell, no libc, CA certificates and tzdata
# included), as the non-root user 65532. The user is numeric so that
# Kubernetes' runAsNonRoot can verify it without a runAsUser.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="abgate" \
      org.opencontainers.image.description="OpenAI-compatible A/B rollout gateway for LLM model versions" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/abgate /abgate
COPY deploy/abgate.yaml /etc/abgate/abgate.yaml
USER 65532:65532
# 8080: the OpenAI-compatible proxy. 8081: admin API, reports, feedback,
# /healthz and /readyz.
EXPOSE 8080 8081
# No shell or curl in the image: the binary checks itself. Liveness only
# (/healthz on the admin listener); an orchestrator that routes traffic
# should also read /readyz (see docs/deploy.md). If your config moves the
# admin listener, override this (compose: healthcheck.test).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/abgate", "healthcheck", "--url", "http://127.0.0.1:8081/healthz", "--timeout", "2s"]
# serve stops gracefully on SIGTERM; give it more than the drain budget
# (docker stop -t 50, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/abgate"]
CMD ["serve", "--config", "/etc/abgate/abgate.yaml"]
