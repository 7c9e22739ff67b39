# syntax=docker/dockerfile:1
#
# Sticky bridges: static Go binaries in a small Alpine image.
#
#   docker build -t sticky .                        # both bridges (default)
#   docker build --build-arg BRIDGE=ari-bridge -t sticky-ari .
#   docker build --build-arg BRIDGE=esl-bridge -t sticky-esl .
#
# The entrypoint is the chosen bridge (ari-bridge when both are built; pick
# the other with --entrypoint esl-bridge). Settings come from STICKY_*
# variables, or a YAML file given with -config (see configs/).
# The image listens on 0.0.0.0:8080, so it refuses to start without
# STICKY_API_KEYS: an open API is only ever served on loopback.

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# ari-bridge, esl-bridge or all
ARG BRIDGE=all
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    case "$BRIDGE" in \
      all) bins="ari-bridge esl-bridge"; default=ari-bridge ;; \
      ari-bridge|esl-bridge) bins="$BRIDGE"; default="$BRIDGE" ;; \
      *) echo "BRIDGE must be ari-bridge, esl-bridge or all, not '$BRIDGE'" >&2; exit 1 ;; \
    esac; \
    mkdir -p /out/bin /out/etc/sticky; \
    for b in $bins; do \
      go build -trimpath -ldflags "-s -w" -o "/out/bin/$b" "./cmd/$b"; \
    done; \
    ln -s "$default" /out/bin/sticky-bridge; \
    cp configs/ari-bridge.yaml configs/esl-bridge.yaml configs/agents.example.yaml /out/etc/sticky/

FROM alpine:${ALPINE_VERSION}
# ca-certificates: TLS to an external NATS; tzdata: log times are UTC but
# operators may set TZ; wget (busybox) runs the health check.
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 sticky \
 && adduser -S -D -H -u 10001 -G sticky -h /data sticky \
 && mkdir -p /data \
 && chown sticky:sticky /data \
 && chmod 700 /data
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/etc/sticky/ /etc/sticky/
ENV STICKY_DATA_DIR=/data \
    STICKY_HTTP_ADDR=0.0.0.0:8080 \
    STICKY_NATS_ADDR=0.0.0.0:4222 \
    STICKY_NATS_WS_ADDR=0.0.0.0:4223 \
    STICKY_LOG_FORMAT=json
VOLUME ["/data"]
# HTTP API and desktop; embedded NATS client and websocket listeners
EXPOSE 8080 4222 4223
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sticky-bridge"]
