# One image for every role (intake, worker, scheduler, migrate): the command picks.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin bizcontacts

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 bizcontacts
COPY --from=build /src/target/release/bizcontacts /usr/local/bin/bizcontacts
USER bizcontacts
ENV BIZCONTACTS_ENV=production
ENTRYPOINT ["bizcontacts"]
CMD ["serve"]
