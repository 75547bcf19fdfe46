# Stand-in for the official postgres image (CI cannot pull images): Debian's PostgreSQL server
# with an entrypoint that honours the official image's POSTGRES_USER, POSTGRES_PASSWORD and
# POSTGRES_DB, keeps its data in /var/lib/postgresql/data and answers pg_isready. The
# major version is Debian's (15), not compose.yaml's 17; hpsearch uses nothing that differs.
ARG ROOTFS_IMAGE=localhost/hpsearch-test/debian:bookworm
FROM ${ROOTFS_IMAGE}
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends postgresql; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/postgres /usr/local/bin/; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; \
    chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
