// The conformance suite's echo backend (registry.k8s.io/gateway-api/
// conformance/echo-basic), built from source for the loopback pod runner.
// Its source left sigs.k8s.io/gateway-api after v1.4.1; v0.1.0 of
// gateway-api-conformance-images is the source of the echo-basic:v0.1.0
// image the v1.7.0 suite runs, with the TCP, UDP and /retry/ modes v1.4.1
// lacks. A module of its own so neither the root module nor the suite
// module carries its dependencies.
module portico.dev/portico/conformance/tools/echo

go 1.27.0

tool sigs.k8s.io/gateway-api-conformance-images/echo-basic

require (
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260523011958-0a33c5d7ca68 // indirect
	google.golang.org/grpc v1.82.1 // indirect
	google.golang.org/protobuf v1.36.12-0.20260120151049-f2248ac996af // indirect
	sigs.k8s.io/gateway-api-conformance-images v0.1.0 // indirect
)
