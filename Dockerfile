# cos-scanner image: a wheel built in one stage, installed into a slim runtime in the next.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scanner ./scanner
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip download --no-cache-dir --dest /wheels 'aiohttp>=3.9' 'anyio>=4.4' 'xmltodict>=0.13' 'aiosqlite>=0.20'

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
ENV COS_SCANNER_CONFIG=/etc/cos-scanner/config.toml \
    COS_SCANNER_STORE_PATH=/var/lib/cos-scanner/scanner.db
ENTRYPOINT ["cos-scanner"]
CMD ["--help"]
