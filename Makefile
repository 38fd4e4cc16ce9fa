# cpafeed — the two commands a new user needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/cpafeed
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build run test test-faults lint bench fuzz clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cpafeed

run: build
	./$(BIN) serve --config configs/cpafeed.yaml

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The estimator's statistical proofs need the full-size synthetic market,
# which is too slow under -race (there it runs smaller and only logs): they
# run once more without it.
test: lint
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'Market' ./model

# Only the fault, tenancy and privacy tests of the real binary (kill -9,
# torn and corrupt journals, full and read-only disks, body limits, slow and
# idle clients, overload). `make test` runs them too.
test-faults:
	$(GO) test -race -count=1 -run 'Fault|Tenancy|NoRawPII' -v ./cmd/cpafeed

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# A short run of every fuzz target (FUZZTIME each).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin data
