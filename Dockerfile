# cos-scanner image: a wheel built in one stage, installed into a slim runtime in the next.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY scanner ./scanner
COPY migrations ./migrations
# every dependency at the version and hash requirements.lock pins (`make lock` updates it),
# then the project's own wheel
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/cos-scanner scanner \
 && mkdir -p /var/lib/cos-scanner /etc/cos-scanner \
 && chown scanner /var/lib/cos-scanner
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels cos-scanner && rm -rf /wheels
COPY config.example.toml /etc/cos-scanner/config.example.toml
USER scanner
WORKDIR /var/lib/cos-scanner
VOLUME /var/lib/cos-scanner
# Only where the config file is: no setting as ENV, which would shadow the mounted file (flag >
# env > file > default). The store's default path, scanner.db, is in the working directory.
ENV COS_SCANNER_CONFIG=/etc/cos-scanner/config.toml
ENTRYPOINT ["cos-scanner"]
CMD ["--help"]
