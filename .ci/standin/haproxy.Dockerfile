# CI's stand-in for the official haproxy image (the compose file's
# HAPROXY_IMAGE), built from Debian alone: public image registries cannot be
# reached from CI.  It runs HAProxy as the official image does: as user
# haproxy, in the foreground, master-worker, with its configuration at
# /usr/local/etc/haproxy/haproxy.cfg, stopped gracefully by SIGUSR1.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /usr/local/etc/haproxy
USER haproxy
WORKDIR /var/lib/haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
