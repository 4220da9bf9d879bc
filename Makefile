# Porthole's everyday commands. `make test` is what CI runs.
.PHONY: test bench run

test:
	scripts/test

bench:
	scripts/bench

run:
	go run ./cmd/porthole-gateway serve
