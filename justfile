# Everyday recipes. The README's commands work with cargo alone; these are shortcuts.

default:
    @just --list

# Run the server on the embedded SQLite default, with demo data.
serve:
    cargo run -p usagelogs -- serve --demo

# The whole test suite (SQLite and PostgreSQL; PostgreSQL must answer on 127.0.0.1:5432).
test:
    cargo test --workspace

# What CI runs: installs, starts PostgreSQL, fmt, clippy, tests.
ci:
    bash .ci/run

# Formatting and lints.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the committed OpenAPI document.
openapi:
    cargo run -q -p usagelogs -- openapi > openapi/openapi.json

# Build the release binary.
build:
    cargo build --release -p usagelogs

# The benchmark: 10 million entries on PostgreSQL (127.0.0.1:5432), written to docs/BENCHMARKS.md.
bench entries="10000000":
    cargo build --release -p usagelogs -p usagelogs-bench
    target/release/usagelogs-bench --database-url postgres://postgres@127.0.0.1:5432/usagelogs_bench --entries {{entries}}
