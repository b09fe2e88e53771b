// Package podrunner is test infrastructure for the Gateway API conformance
// run: a loopback pod runner that stands in for a kubelet and a scheduler on
// a machine with no container runtime. It is not part of Portico and must
// never run against a real cluster.
//
// The runner registers one Node, binds every unscheduled Pod to it (there is
// no scheduler), and runs each bound Pod's containers as host processes: the
// container image is looked up in a fixed table that maps it to a local
// binary (the suite's echo-basic image to the echo server built from
// source). Each Pod gets a network namespace of its own with a veth pair to
// the host (controlplane.NewNetns, 10.250.X.2), because the API server
// rejects loopback addresses in endpoints; that address is the Pod IP, and
// the host, where Portico runs, reaches it directly.
//
// What a kubelet would do and the suite relies on, the runner does:
//   - environment from value, fieldRef (metadata, spec.nodeName, status
//     IPs), secretKeyRef and configMapKeyRef;
//   - secret, configMap, downwardAPI, projected (with a bound
//     service-account token) and emptyDir volumes written to a per-Pod
//     directory; there is no mount namespace, so environment values that
//     point under a volume's mountPath are rewritten to that directory;
//   - container args as rendered, with a path under a volume's mountPath
//     (alone or as --flag=path) rewritten like environment values;
//   - Running and Ready status with the Pod IP once every TCP port the
//     container declares (or the image's default port) accepts
//     connections, or after Config.ReadyTimeout if the process runs but
//     listens elsewhere (a kubelet without a readiness probe does not wait
//     at all), so the EndpointSlice controller publishes the Pod;
//   - httpGet readiness probes, on top of that: Ready only while the probe
//     passes (an answer in 200-399 after successThreshold tries, not Ready
//     after failureThreshold failures, every periodSeconds), probing on
//     through termination so a draining Pod leaves its endpoints;
//   - graceful termination: a deleted Pod's processes get SIGTERM, then
//     its grace period (deletionGracePeriodSeconds, from
//     terminationGracePeriodSeconds) before SIGKILL, and the Pod object
//     stays until they have exited, so a rolling update can drain;
//   - Pod-to-Pod traffic: each namespace routes 10.250.0.0/16 through the
//     host, with forwarding enabled on its host interface only
//     (RoutePodNetwork; a test's own namespaces can use it too);
//   - API access, with Config.APIServer: the API server's loopback address
//     is forwarded into each Pod's namespace, KUBERNETES_SERVICE_HOST and
//     _PORT name it, and the service-account volume gains a kubeconfig
//     with the Pod's bound token. client-go's in-cluster configuration
//     reads fixed paths that only a mount namespace could serve, so a Pod
//     passes --kubeconfig=/var/run/secrets/kubernetes.io/serviceaccount/kubeconfig
//     instead (rewritten to the host path like any other);
//   - container logs: output is recorded with timestamps and served to the
//     API server's pods/log calls from the Node's address, which is the host
//     end of a network namespace of its own;
//   - restarts after a crash, with a growing delay (whatever the
//     restartPolicy: the suite only runs Deployments);
//   - on deletion, stopping the processes, removing the namespace and
//     force-deleting the Pod, as a kubelet does after graceful termination;
//   - a Node Lease heartbeat, so the node lifecycle controller never taints
//     the Node and evicts the Pods.
//
// Not supported, reported on the container status instead: images missing
// from the table, container commands (there is no image filesystem to run
// them from), init containers, other volume kinds, exec and tcpSocket
// readiness probes (only the port check above applies), liveness and
// startup probes (ignored), exec, attach and port-forward.
package podrunner
