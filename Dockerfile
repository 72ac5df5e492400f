# syntax=docker/dockerfile:1
# Build: a static binary, no cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -tags nomsgpack -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/abgate ./cmd/abgate

# Run: distroless static, as the non-root user (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/abgate /abgate
COPY examples/abgate.yaml /etc/abgate/abgate.yaml
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/abgate"]
CMD ["serve", "--config", "/etc/abgate/abgate.yaml"]
