# Porthole's everyday commands. `make test` is what CI runs.
.PHONY: test bench run package

test:
	scripts/test

bench:
	scripts/bench

run:
	go run ./cmd/porthole-gateway serve

package:
	scripts/package
