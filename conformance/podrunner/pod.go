package podrunner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"portico.dev/portico/hack/controlplane"
)

// pod is a running Pod: its namespace and one process per container.
type pod struct {
	uid        types.UID
	dir        string
	netns      *controlplane.Netns
	containers []*container
	started    metav1.Time

	// statusMu orders the status writes of the sync worker and the
	// readiness probers, so a stale result never overwrites a newer one.
	statusMu   sync.Mutex
	portsReady bool
	// terminating is set (under Runner.mu) once a deleted Pod has been
	// sent SIGTERM.
	terminating bool

	stopOnce sync.Once
	stopped  chan struct{}
}

type container struct {
	name       string
	image      string
	binary     string
	args       []string
	env        []string
	readyPorts []int
	logPath    string
	// prober runs the httpGet readiness probe, if the container has one.
	prober *prober

	proc     *controlplane.Process
	started  metav1.Time
	restarts int32
	// exitSeen is when sync first noticed the process had ended; the
	// restart delay counts from it.
	exitSeen time.Time
}

// waitingError is a container that cannot start (yet); the status shows
// reason and message. A permanent one is not retried.
type waitingError struct {
	container string
	reason    string
	message   string
	permanent bool
}

func (e *waitingError) Error() string {
	return fmt.Sprintf("container %s: %s: %s", e.container, e.reason, e.message)
}

// newPod prepares the Pod's volumes and environment, creates its network
// namespace and starts its containers.
func (r *Runner) newPod(ctx context.Context, obj *corev1.Pod) (_ *pod, err error) {
	if len(obj.Spec.InitContainers) > 0 {
		return nil, &waitingError{container: obj.Spec.InitContainers[0].Name, reason: "CreateContainerConfigError",
			message: "init containers are not supported by the loopback pod runner", permanent: true}
	}
	var images []Image
	for _, c := range obj.Spec.Containers {
		img, ok := r.imageFor(c.Image)
		if !ok {
			return nil, &waitingError{container: c.Name, reason: "ErrImagePull",
				message: fmt.Sprintf("image %q is not one the loopback pod runner can run", c.Image), permanent: true}
		}
		if len(c.Command) > 0 {
			return nil, &waitingError{container: c.Name, reason: "CreateContainerConfigError",
				message: "container command is not supported by the loopback pod runner (there is no image filesystem)", permanent: true}
		}
		images = append(images, img)
	}
	dir := r.podDir(obj)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mounts, err := r.writeVolumes(ctx, obj, dir)
	if err != nil {
		return nil, err
	}
	if r.cfg.APIServer != "" {
		if err := writeKubeconfig(r.cfg.APIServer, mounts); err != nil {
			return nil, err
		}
	}
	ns, err := controlplane.NewNetns()
	if err != nil {
		return nil, err
	}
	p := &pod{uid: obj.UID, dir: dir, netns: ns, started: metav1.Now(), stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	if err := RoutePodNetwork(ns); err != nil {
		return nil, err
	}
	if r.cfg.APIServer != "" {
		if err := p.forwardAPIServer(r.cfg.APIServer); err != nil {
			return nil, err
		}
	}
	for i, c := range obj.Spec.Containers {
		env, err := r.containerEnv(ctx, obj, &c, ns, mounts[c.Name])
		if err != nil {
			return nil, err
		}
		args := make([]string, len(c.Args))
		for j, a := range c.Args {
			args[j] = rewriteArg(a, mounts[c.Name])
		}
		pr, err := newProber(&c, ns.NSIP.String())
		if err != nil {
			return nil, &waitingError{container: c.Name, reason: "CreateContainerConfigError", message: err.Error(), permanent: true}
		}
		ctr := &container{
			name:       c.Name,
			image:      c.Image,
			binary:     images[i].Binary,
			args:       args,
			env:        env,
			readyPorts: readyPorts(&c, images[i], env),
			logPath:    filepath.Join(dir, c.Name+".log"),
			prober:     pr,
		}
		if err := p.startContainer(ctr); err != nil {
			return nil, err
		}
		p.containers = append(p.containers, ctr)
	}
	return p, nil
}

func (p *pod) startContainer(c *container) error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	cmd := p.netns.Command(c.binary, c.args...)
	cmd.Env = c.env
	cmd.Dir = p.dir
	cmd.Stdout = &logWriter{mu: &mu, f: logFile, stream: "stdout"}
	cmd.Stderr = &logWriter{mu: &mu, f: logFile, stream: "stderr"}
	proc, err := p.netns.Start(cmd, "")
	if err != nil {
		logFile.Close()
		return err
	}
	go func() {
		// Done closes after Wait, which waits for the output copies.
		<-proc.Done()
		logFile.Close()
	}()
	c.proc = proc
	c.started = metav1.Now()
	c.exitSeen = time.Time{}
	return nil
}

func (p *pod) restart(c *container) error {
	c.restarts++
	return p.startContainer(c)
}

func (c *container) exitedAt() time.Time {
	if c.exitSeen.IsZero() {
		c.exitSeen = time.Now()
	}
	return c.exitSeen
}

// backoff is the kubelet's crash-loop delay: 1s doubling, at most 30s.
func (c *container) backoff() time.Duration {
	d := time.Second << min(c.restarts, 5)
	return min(d, 30*time.Second)
}

func (p *pod) stop() {
	p.stopOnce.Do(func() {
		close(p.stopped)
		if err := p.netns.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "podrunner: %v\n", err)
		}
	})
}

// waitReady waits until every container's ready ports accept connections
// from the host, a process exits, or the timeout passes. It reports whether
// every process is still running: a kubelet marks a container without a
// readiness probe Ready once it runs, and some suite backends deliberately
// listen elsewhere than the port they declare, so the port check only
// orders Ready after the listener in the usual case and never withholds it.
func (p *pod) waitReady(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dialer := net.Dialer{Timeout: time.Second}
wait:
	for _, c := range p.containers {
		for _, port := range c.readyPorts {
			addr := p.netns.Addr(port)
			for {
				conn, err := dialer.DialContext(ctx, "tcp", addr)
				if err == nil {
					conn.Close()
					break
				}
				select {
				case <-c.proc.Done():
					return false
				case <-ctx.Done():
					break wait
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}
	for _, c := range p.containers {
		select {
		case <-c.proc.Done():
			return false
		default:
		}
	}
	return true
}

// readyPorts are the TCP ports readiness waits for: those the container
// declares, else the image's default port (unless, in the mode the
// environment selects, the image serves no TCP port).
func readyPorts(c *corev1.Container, img Image, env []string) []int {
	if len(c.Ports) > 0 {
		var ports []int
		for _, cp := range c.Ports {
			if cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP {
				ports = append(ports, int(cp.ContainerPort))
			}
		}
		return ports
	}
	if img.DefaultPort == 0 {
		return nil
	}
	if img.NoReadyPort != nil {
		m := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		if img.NoReadyPort(m) {
			return nil
		}
	}
	return []int{img.DefaultPort}
}

// volumeMount is a container path and where its content is on the host.
type volumeMount struct {
	mountPath string
	hostPath  string
}

// writeVolumes writes the Pod's secret, configMap, downwardAPI, projected
// and emptyDir volumes under dir and returns each container's mounts. A
// missing Secret or ConfigMap is a (retried) waitingError, as a kubelet
// keeps a Pod in ContainerCreating until it appears.
func (r *Runner) writeVolumes(ctx context.Context, obj *corev1.Pod, dir string) (map[string][]volumeMount, error) {
	hostPaths := map[string]string{}
	for _, v := range obj.Spec.Volumes {
		path := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, err
		}
		hostPaths[v.Name] = path
		files, err := r.volumeFiles(ctx, obj, v)
		if err != nil {
			var w *waitingError
			if errors.As(err, &w) {
				w.container = obj.Spec.Containers[0].Name
				w.message = fmt.Sprintf("volume %q: %s", v.Name, w.message)
			}
			return nil, err
		}
		for name, b := range files {
			file := filepath.Join(path, filepath.Clean("/"+name))
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	mounts := map[string][]volumeMount{}
	for _, c := range obj.Spec.Containers {
		for _, m := range c.VolumeMounts {
			host, ok := hostPaths[m.Name]
			if !ok {
				continue
			}
			mounts[c.Name] = append(mounts[c.Name], volumeMount{
				mountPath: filepath.Clean(m.MountPath),
				hostPath:  filepath.Join(host, m.SubPath),
			})
		}
	}
	return mounts, nil
}

// volumeFiles returns a volume's files by path relative to the volume.
func (r *Runner) volumeFiles(ctx context.Context, obj *corev1.Pod, v corev1.Volume) (map[string][]byte, error) {
	switch {
	case v.EmptyDir != nil:
		return nil, nil
	case v.Secret != nil:
		return r.secretFiles(ctx, obj.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
	case v.ConfigMap != nil:
		return r.configMapFiles(ctx, obj.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
	case v.DownwardAPI != nil:
		return downwardAPIFiles(obj, v.DownwardAPI.Items, r.cfg.NodeName)
	case v.Projected != nil:
		files := map[string][]byte{}
		for _, src := range v.Projected.Sources {
			var part map[string][]byte
			var err error
			switch {
			case src.Secret != nil:
				part, err = r.secretFiles(ctx, obj.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional)
			case src.ConfigMap != nil:
				part, err = r.configMapFiles(ctx, obj.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
			case src.DownwardAPI != nil:
				part, err = downwardAPIFiles(obj, src.DownwardAPI.Items, r.cfg.NodeName)
			case src.ServiceAccountToken != nil:
				part, err = r.tokenFile(ctx, obj, src.ServiceAccountToken)
			}
			if err != nil {
				return nil, err
			}
			maps.Copy(files, part)
		}
		return files, nil
	}
	return nil, &waitingError{reason: "CreateContainerConfigError",
		message:   "only secret, configMap, downwardAPI, projected and emptyDir volumes are supported by the loopback pod runner",
		permanent: true}
}

func (r *Runner) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool) (map[string][]byte, error) {
	s, err := r.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if optional != nil && *optional {
			return nil, nil
		}
		return nil, &waitingError{reason: "ContainerCreating", message: fmt.Sprintf("secret %q not found", name)}
	}
	if err != nil {
		return nil, err
	}
	return keysToFiles(s.Data, items)
}

func (r *Runner) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool) (map[string][]byte, error) {
	cm, err := r.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if optional != nil && *optional {
			return nil, nil
		}
		return nil, &waitingError{reason: "ContainerCreating", message: fmt.Sprintf("configmap %q not found", name)}
	}
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{}
	for k, s := range cm.Data {
		data[k] = []byte(s)
	}
	maps.Copy(data, cm.BinaryData)
	return keysToFiles(data, items)
}

// tokenFile asks the API for a bound service-account token, as a kubelet
// does for the kube-api-access volume every Pod gets.
func (r *Runner) tokenFile(ctx context.Context, obj *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (map[string][]byte, error) {
	sa := obj.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: obj.Name, UID: obj.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tok, err := r.client.CoreV1().ServiceAccounts(obj.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &waitingError{reason: "ContainerCreating", message: fmt.Sprintf("service account %q not found", sa)}
	}
	if err != nil {
		return nil, err
	}
	return map[string][]byte{src.Path: []byte(tok.Status.Token)}, nil
}

func downwardAPIFiles(obj *corev1.Pod, items []corev1.DownwardAPIVolumeFile, nodeName string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, it := range items {
		if it.FieldRef == nil {
			return nil, &waitingError{reason: "CreateContainerConfigError",
				message: "downwardAPI: only fieldRef items are supported by the loopback pod runner", permanent: true}
		}
		v, err := fieldValue(obj, it.FieldRef.FieldPath, nodeName, nil)
		if err != nil {
			return nil, err
		}
		files[it.Path] = []byte(v)
	}
	return files, nil
}

func keysToFiles(data map[string][]byte, items []corev1.KeyToPath) (map[string][]byte, error) {
	files := map[string][]byte{}
	if len(items) == 0 {
		maps.Copy(files, data)
		return files, nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			return nil, &waitingError{reason: "CreateContainerConfigError", message: fmt.Sprintf("key %q not found", it.Key)}
		}
		files[it.Path] = b
	}
	return files, nil
}

// containerEnv resolves the container's environment as a kubelet would
// (the subset the suite uses), then points values under a volume's
// mountPath at the volume's host directory.
func (r *Runner) containerEnv(ctx context.Context, obj *corev1.Pod, c *corev1.Container, ns *controlplane.Netns, mounts []volumeMount) ([]string, error) {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME=" + obj.Name,
	}
	env = append(env, apiEnv(r.cfg.APIServer)...)
	for _, e := range c.Env {
		value, err := r.envValue(ctx, obj, c, e, ns)
		if err != nil {
			return nil, err
		}
		env = append(env, e.Name+"="+rewriteMountPath(value, mounts))
	}
	return env, nil
}

func (r *Runner) envValue(ctx context.Context, obj *corev1.Pod, c *corev1.Container, e corev1.EnvVar, ns *controlplane.Netns) (string, error) {
	if e.ValueFrom == nil {
		return e.Value, nil
	}
	switch src := e.ValueFrom; {
	case src.FieldRef != nil:
		v, err := fieldValue(obj, src.FieldRef.FieldPath, r.cfg.NodeName, ns)
		if w, ok := err.(*waitingError); ok {
			w.container = c.Name
		}
		return v, err
	case src.SecretKeyRef != nil:
		s, err := r.client.CoreV1().Secrets(obj.Namespace).Get(ctx, src.SecretKeyRef.Name, metav1.GetOptions{})
		if err == nil {
			if b, ok := s.Data[src.SecretKeyRef.Key]; ok {
				return string(b), nil
			}
		}
		if (err == nil || apierrors.IsNotFound(err)) && src.SecretKeyRef.Optional != nil && *src.SecretKeyRef.Optional {
			return "", nil
		}
		if err == nil || apierrors.IsNotFound(err) {
			return "", &waitingError{container: c.Name, reason: "CreateContainerConfigError",
				message: fmt.Sprintf("env %s: key %q of secret %q not found", e.Name, src.SecretKeyRef.Key, src.SecretKeyRef.Name)}
		}
		return "", err
	case src.ConfigMapKeyRef != nil:
		cm, err := r.client.CoreV1().ConfigMaps(obj.Namespace).Get(ctx, src.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := cm.Data[src.ConfigMapKeyRef.Key]; ok {
				return v, nil
			}
		}
		if (err == nil || apierrors.IsNotFound(err)) && src.ConfigMapKeyRef.Optional != nil && *src.ConfigMapKeyRef.Optional {
			return "", nil
		}
		if err == nil || apierrors.IsNotFound(err) {
			return "", &waitingError{container: c.Name, reason: "CreateContainerConfigError",
				message: fmt.Sprintf("env %s: key %q of configmap %q not found", e.Name, src.ConfigMapKeyRef.Key, src.ConfigMapKeyRef.Name)}
		}
		return "", err
	}
	return "", &waitingError{container: c.Name, reason: "CreateContainerConfigError",
		message:   fmt.Sprintf("env %s: only value, fieldRef, secretKeyRef and configMapKeyRef are supported by the loopback pod runner", e.Name),
		permanent: true}
}

// fieldValue resolves a downward-API fieldRef.
func fieldValue(obj *corev1.Pod, path, nodeName string, ns *controlplane.Netns) (string, error) {
	switch path {
	case "metadata.name":
		return obj.Name, nil
	case "metadata.namespace":
		return obj.Namespace, nil
	case "metadata.uid":
		return string(obj.UID), nil
	case "spec.nodeName":
		return nodeName, nil
	case "spec.serviceAccountName":
		return obj.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		if ns != nil {
			return ns.NSIP.String(), nil
		}
	case "status.hostIP", "status.hostIPs":
		if ns != nil {
			return ns.HostIP.String(), nil
		}
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": obj.Labels, "metadata.annotations": obj.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				return m[key], nil
			}
		}
	}
	return "", &waitingError{reason: "CreateContainerConfigError",
		message: fmt.Sprintf("fieldRef %q is not supported by the loopback pod runner", path), permanent: true}
}

// rewriteMountPath maps a value naming a path under a volume's mountPath
// to the same path under the volume's host directory; other values are
// returned as they are.
func rewriteMountPath(value string, mounts []volumeMount) string {
	for _, m := range mounts {
		if value == m.mountPath {
			return m.hostPath
		}
		if rest, ok := strings.CutPrefix(value, m.mountPath+"/"); ok {
			return filepath.Join(m.hostPath, rest)
		}
	}
	return value
}

// reportStatus writes the Pod's status with its readiness now: every
// process running, its ports checked, and every readiness probe passing.
func (r *Runner) reportStatus(ctx context.Context, obj *corev1.Pod, p *pod) error {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	ready := p.portsReady
	for _, c := range p.containers {
		select {
		case <-c.proc.Done():
			ready = false
		default:
		}
		if c.prober != nil && !c.prober.ready() {
			ready = false
		}
	}
	return r.writeStatus(ctx, obj, p, ready)
}

func (p *pod) setPortsReady(ready bool) {
	p.statusMu.Lock()
	p.portsReady = ready
	p.statusMu.Unlock()
}

// writeStatus reports the Pod Running, with its IP, and Ready when ready.
func (r *Runner) writeStatus(ctx context.Context, obj *corev1.Pod, p *pod, ready bool) error {
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	var statuses []corev1.ContainerStatus
	for _, c := range p.containers {
		cs := corev1.ContainerStatus{
			Name:         c.name,
			Image:        c.image,
			ImageID:      "loopback://" + c.binary,
			ContainerID:  "loopback://" + strconv.Itoa(c.proc.Pid()),
			RestartCount: c.restarts,
		}
		select {
		case <-c.proc.Done():
			code := int32(1)
			if c.proc.Err() == nil {
				code = 0
			}
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error",
				Message: fmt.Sprintf("%v (log: %s)", c.proc.Err(), c.logPath), StartedAt: c.started, FinishedAt: metav1.Now()}
		default:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.started}
			cs.Started = ptr.To(true)
			cs.Ready = ready
		}
		statuses = append(statuses, cs)
	}
	return r.updateStatus(ctx, obj, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodRunning
		st.HostIP = p.netns.HostIP.String()
		st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
		st.PodIP = p.netns.NSIP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
		st.StartTime = &p.started
		st.ContainerStatuses = statuses
		setCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionTrue)
		setCondition(st, corev1.PodInitialized, corev1.ConditionTrue)
		setCondition(st, corev1.ContainersReady, readyStatus)
		setCondition(st, corev1.PodReady, readyStatus)
	})
}

// writeWaiting reports why the Pod's containers have not started, unless
// the status says so already (which would only cause another update).
func (r *Runner) writeWaiting(ctx context.Context, obj *corev1.Pod, w *waitingError) error {
	for _, cs := range obj.Status.ContainerStatuses {
		if cs.State.Waiting != nil && cs.State.Waiting.Reason == w.reason && cs.State.Waiting.Message == w.message {
			return nil
		}
	}
	var statuses []corev1.ContainerStatus
	for _, c := range obj.Spec.Containers {
		statuses = append(statuses, corev1.ContainerStatus{
			Name:  c.Name,
			Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: w.reason, Message: w.message}},
		})
	}
	return r.updateStatus(ctx, obj, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		st.ContainerStatuses = statuses
		setCondition(st, corev1.ContainersReady, corev1.ConditionFalse)
		setCondition(st, corev1.PodReady, corev1.ConditionFalse)
	})
}

func (r *Runner) updateStatus(ctx context.Context, obj *corev1.Pod, mutate func(*corev1.PodStatus)) error {
	pods := r.client.CoreV1().Pods(obj.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, obj.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != obj.UID || cur.DeletionTimestamp != nil {
			return nil
		}
		mutate(&cur.Status)
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != s {
				st.Conditions[i].Status = s
				st.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()})
}
