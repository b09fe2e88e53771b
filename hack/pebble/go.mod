// Module pebble pins Pebble, the ACME test server that hack/pebble/build.sh
// builds for the ACME integration tests. It is a separate module so the
// root module never depends on Pebble.
module portico.dev/portico/hack/pebble

go 1.27.0

toolchain go1.27.4

require (
	github.com/go-jose/go-jose/v4 v4.1.4 // indirect
	github.com/letsencrypt/challtestsrv v1.4.2 // indirect
	github.com/letsencrypt/pebble/v2 v2.10.1 // indirect
	github.com/miekg/dns v1.1.62 // indirect
	golang.org/x/mod v0.24.0 // indirect
	golang.org/x/net v0.40.0 // indirect
	golang.org/x/sync v0.14.0 // indirect
	golang.org/x/sys v0.33.0 // indirect
	golang.org/x/tools v0.33.0 // indirect
)

tool github.com/letsencrypt/pebble/v2/cmd/pebble
