package podrunner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"portico.dev/portico/hack/controlplane"
)

// DefaultNodeName is the Node the runner registers when Config.NodeName is
// empty.
const DefaultNodeName = "portico-loopback"

// kubeletPort is where the Node's log endpoint listens, on the Node's own
// address.
const kubeletPort = 10250

// Image is what the runner starts for a container image.
type Image struct {
	// Binary is the executable run in place of the image's entrypoint.
	Binary string
	// DefaultPort is the TCP port the process listens on when the container
	// declares no ports; readiness waits for it. Zero means readiness only
	// waits for the process to start.
	DefaultPort int
	// NoReadyPort, given the container's resolved environment, reports that
	// the process serves no TCP port at all in that mode (the echo server's
	// UDP mode), so readiness does not wait for DefaultPort.
	NoReadyPort func(env map[string]string) bool
}

// Config configures a Runner.
type Config struct {
	Client kubernetes.Interface
	// Images maps an image reference without its tag or digest
	// ("registry.k8s.io/gateway-api/conformance/echo-basic") to what runs it.
	Images map[string]Image
	// WorkDir holds each Pod's volumes and process logs.
	WorkDir string
	// NodeName defaults to DefaultNodeName.
	NodeName string
	Logger   *slog.Logger
	// Workers is how many Pods are started or stopped at once; default 4.
	Workers int
	// ReadyTimeout bounds the wait for a container's ports before it is
	// reported Ready anyway (as a kubelet does without a readiness probe);
	// default 10s.
	ReadyTimeout time.Duration
	// APIServer, when set, is the control plane's URL on the host's
	// loopback; every Pod can reach it at the same URL inside its
	// namespace, and finds a kubeconfig with its own token in its
	// service-account volume (see the package comment).
	APIServer string
}

// Runner runs the Pods of one control plane as local processes. See the
// package comment.
type Runner struct {
	cfg    Config
	log    *slog.Logger
	client kubernetes.Interface
	pods   corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]

	nodeIP netip.Addr

	mu      sync.Mutex
	running map[string]*pod // by namespace/name
	closed  bool
}

// New returns a Runner; Run starts it.
func New(cfg Config) (*Runner, error) {
	if cfg.Client == nil {
		return nil, errors.New("podrunner: Client is required")
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("podrunner: WorkDir is required")
	}
	if cfg.NodeName == "" {
		cfg.NodeName = DefaultNodeName
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	for ref, img := range cfg.Images {
		if _, err := os.Stat(img.Binary); err != nil {
			return nil, fmt.Errorf("podrunner: binary for image %s: %w", ref, err)
		}
	}
	return &Runner{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeName),
		client:  cfg.Client,
		running: map[string]*pod{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "podrunner"}),
	}, nil
}

// NodeName is the Node the runner binds Pods to.
func (r *Runner) NodeName() string { return r.cfg.NodeName }

// Run registers the Node and runs Pods until ctx ends, then stops every
// process and removes every network namespace it created before returning.
// ready, if not nil, is closed once the Node is registered and the Pod
// cache has synced.
func (r *Runner) Run(ctx context.Context, ready chan<- struct{}) error {
	defer r.stopAll()
	defer r.queue.ShutDown()
	if err := os.MkdirAll(r.cfg.WorkDir, 0o755); err != nil {
		return err
	}
	// The Node's address, where the API server fetches container logs, is
	// the host end of a network namespace of its own: an address on this
	// host that only this runner uses, so the fixed kubelet port never
	// clashes with another runner or with the API server on loopback.
	nodeNetns, err := controlplane.NewNetns()
	if err != nil {
		return fmt.Errorf("node network namespace: %w", err)
	}
	defer nodeNetns.Close()
	r.nodeIP = nodeNetns.HostIP
	srv, err := r.serveKubelet(netip.AddrPortFrom(r.nodeIP, kubeletPort))
	if err != nil {
		return fmt.Errorf("node log endpoint: %w", err)
	}
	defer srv.Close()
	if err := r.registerNode(ctx); err != nil {
		return fmt.Errorf("register node %s: %w", r.cfg.NodeName, err)
	}
	factory := informers.NewSharedInformerFactory(r.client, 0)
	podInformer := factory.Core().V1().Pods()
	r.pods = podInformer.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for r.processNext(ctx) {
			}
		})
	}
	wg.Go(func() { r.heartbeat(ctx) })
	r.log.Info("loopback pod runner ready")
	if ready != nil {
		close(ready)
	}
	<-ctx.Done()
	r.queue.ShutDown()
	wg.Wait()
	return nil
}

func (r *Runner) processNext(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	if err := r.sync(ctx, key); err != nil {
		if ctx.Err() != nil {
			return false
		}
		var waiting *waitingError
		if errors.As(err, &waiting) {
			r.log.Info("pod waiting", "pod", key, "reason", waiting.reason, "message", waiting.message)
		} else {
			r.log.Warn("pod sync failed, retrying", "pod", key, "err", err)
		}
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

// sync brings one Pod's processes in line with its object.
func (r *Runner) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	obj, err := r.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		r.stop(key, "")
		return nil
	}
	if err != nil {
		return err
	}
	if obj.Spec.NodeName == "" {
		if obj.DeletionTimestamp != nil {
			return nil
		}
		return r.bind(ctx, obj)
	}
	if obj.Spec.NodeName != r.cfg.NodeName {
		return nil
	}
	if obj.DeletionTimestamp != nil {
		if r.terminate(key, obj) {
			return nil
		}
		return r.forceDelete(ctx, obj)
	}
	if obj.Status.Phase == corev1.PodSucceeded || obj.Status.Phase == corev1.PodFailed {
		return nil
	}
	r.mu.Lock()
	p := r.running[key]
	r.mu.Unlock()
	if p != nil && p.uid != obj.UID {
		// Same name, new Pod (a StatefulSet replacement).
		r.stop(key, p.uid)
		p = nil
	}
	if p == nil {
		return r.start(ctx, key, obj)
	}
	return r.restartExited(ctx, key, p, obj)
}

func (r *Runner) bind(ctx context.Context, obj *corev1.Pod) error {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: obj.Name, UID: obj.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: r.cfg.NodeName},
	}
	err := r.client.CoreV1().Pods(obj.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// Bound already, or gone: the next event says which.
		return nil
	}
	if err == nil {
		r.log.Debug("bound pod", "pod", obj.Namespace+"/"+obj.Name)
	}
	return err
}

// forceDelete removes a Pod whose processes have stopped, as a kubelet does
// once graceful termination is over.
func (r *Runner) forceDelete(ctx context.Context, obj *corev1.Pod) error {
	err := r.client.CoreV1().Pods(obj.Namespace).Delete(ctx, obj.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &obj.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func (r *Runner) start(ctx context.Context, key string, obj *corev1.Pod) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil
	}
	p, err := r.newPod(ctx, obj)
	if err != nil {
		var waiting *waitingError
		if errors.As(err, &waiting) {
			// Keep trying: a Secret the Pod mounts may be created later,
			// and the status says what the Pod is waiting for meanwhile.
			if serr := r.writeWaiting(ctx, obj, waiting); serr != nil {
				r.log.Warn("pod status update failed", "pod", key, "err", serr)
			}
			if waiting.permanent {
				r.log.Warn("pod cannot run", "pod", key, "err", err)
				return nil
			}
		}
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		p.stop()
		return nil
	}
	r.running[key] = p
	r.mu.Unlock()
	r.log.Info("pod started", "pod", key, "ip", p.netns.NSIP, "netns", p.netns.Name)
	for _, c := range p.containers {
		go r.watchExit(ctx, key, p, c)
	}
	for _, c := range p.containers {
		r.startProber(ctx, obj, p, c)
	}
	p.setPortsReady(p.waitReady(ctx, r.cfg.ReadyTimeout))
	return r.reportStatus(ctx, obj, p)
}

func (r *Runner) startProber(ctx context.Context, obj *corev1.Pod, p *pod, c *container) {
	if c.prober == nil {
		return
	}
	c.prober.set(false)
	go c.prober.run(ctx, p.stopped, c.proc.Done(), func() {
		if err := r.reportStatus(ctx, obj, p); err != nil && ctx.Err() == nil {
			r.log.Warn("pod status update failed", "pod", obj.Namespace+"/"+obj.Name, "err", err)
		}
	})
}

// terminate starts the graceful termination of the deleted Pod at key, if
// it runs here: SIGTERM, the grace period, SIGKILL, then the Pod is stopped
// and requeued so sync deletes it. It reports whether termination is (still)
// under way; false means nothing runs and the Pod can go.
func (r *Runner) terminate(key string, obj *corev1.Pod) bool {
	r.mu.Lock()
	p := r.running[key]
	if p == nil || p.uid != obj.UID {
		r.mu.Unlock()
		r.stop(key, "")
		return false
	}
	started := p.terminating
	p.terminating = true
	r.mu.Unlock()
	if !started {
		grace := gracePeriod(obj)
		r.log.Info("pod terminating", "pod", key, "grace", grace)
		go func() {
			p.terminate(grace)
			r.stop(key, p.uid)
			r.queue.Add(key)
		}()
	}
	return true
}

// watchExit requeues the Pod when one of its processes ends on its own, so
// sync reports it and restarts it.
func (r *Runner) watchExit(ctx context.Context, key string, p *pod, c *container) {
	select {
	case <-ctx.Done():
		return
	case <-p.stopped:
		return
	case <-c.proc.Done():
	}
	r.mu.Lock()
	terminating := p.terminating
	r.mu.Unlock()
	if terminating {
		return
	}
	r.log.Warn("container exited", "pod", key, "container", c.name, "err", c.proc.Err(), "log", c.logPath)
	r.queue.Add(key)
}

func (r *Runner) restartExited(ctx context.Context, key string, p *pod, obj *corev1.Pod) error {
	var exited []*container
	for _, c := range p.containers {
		select {
		case <-c.proc.Done():
			exited = append(exited, c)
		default:
		}
	}
	if len(exited) == 0 {
		return nil
	}
	p.setPortsReady(false)
	if err := r.reportStatus(ctx, obj, p); err != nil {
		return err
	}
	for _, c := range exited {
		delay := c.backoff()
		if wait := time.Until(c.exitedAt().Add(delay)); wait > 0 {
			r.queue.AddAfter(key, wait)
			return nil
		}
		// The probers' status writes read c.proc.
		p.statusMu.Lock()
		err := p.restart(c)
		p.statusMu.Unlock()
		if err != nil {
			return err
		}
		r.log.Info("container restarted", "pod", key, "container", c.name, "restarts", c.restarts)
		go r.watchExit(ctx, key, p, c)
		r.startProber(ctx, obj, p, c)
	}
	p.setPortsReady(p.waitReady(ctx, r.cfg.ReadyTimeout))
	return r.reportStatus(ctx, obj, p)
}

// stop ends the processes of the Pod at key (of that uid, when given) and
// removes its namespace.
func (r *Runner) stop(key string, uid types.UID) {
	r.mu.Lock()
	p := r.running[key]
	if p != nil && (uid == "" || p.uid == uid) {
		delete(r.running, key)
	} else {
		p = nil
	}
	r.mu.Unlock()
	if p == nil {
		return
	}
	p.stop()
	r.log.Info("pod stopped", "pod", key)
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	r.closed = true
	pods := r.running
	r.running = map[string]*pod{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(p.stop)
	}
	wg.Wait()
	r.log.Info("loopback pod runner stopped", "pods", len(pods))
}

// registerNode creates (or takes over) the Node and its Lease.
func (r *Runner) registerNode(ctx context.Context) error {
	nodes := r.client.CoreV1().Nodes()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: r.cfg.NodeName,
			Labels: map[string]string{
				corev1.LabelHostname:   r.cfg.NodeName,
				corev1.LabelOSStable:   "linux",
				"portico.dev/loopback": "true",
			},
		},
	}
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := r.updateNodeStatus(ctx); err != nil {
		return err
	}
	return r.renewLease(ctx)
}

// updateNodeStatus keeps the Node Ready; the node controllers write to the
// same object, hence the retry on conflicts.
func (r *Runner) updateNodeStatus(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error { return r.tryUpdateNodeStatus(ctx) })
}

func (r *Runner) tryUpdateNodeStatus(ctx context.Context) error {
	nodes := r.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Phase = corev1.NodeRunning
	// InternalIP only: the API server prefers a Hostname address, which
	// would need name resolution.
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: r.nodeIP.String()}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = kubeletPort
	node.Status.NodeInfo.KubeletVersion = "v0.0.0-loopback"
	node.Status.NodeInfo.OperatingSystem = "linux"
	node.Status.Conditions = []corev1.NodeCondition{{
		Type:               corev1.NodeReady,
		Status:             corev1.ConditionTrue,
		Reason:             "LoopbackPodRunnerReady",
		Message:            "test infrastructure: Pods run as local processes",
		LastHeartbeatTime:  now,
		LastTransitionTime: now,
	}}
	_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// renewLease is the heartbeat the node lifecycle controller watches; without
// it the Node turns NotReady after the grace period and its Pods are evicted.
func (r *Runner) renewLease(ctx context.Context) error {
	leases := r.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(r.cfg.NodeName),
				LeaseDurationSeconds: ptr.To[int32](40),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

func (r *Runner) heartbeat(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := r.renewLease(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("node lease renewal failed", "err", err)
		}
		if err := r.updateNodeStatus(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("node status update failed", "err", err)
		}
	}, 10*time.Second)
}

// imageFor looks an image reference up without its tag or digest.
func (r *Runner) imageFor(ref string) (Image, bool) {
	img, ok := r.cfg.Images[imageRepository(ref)]
	return img, ok
}

// imageRepository strips the tag and digest from an image reference.
func imageRepository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	// A colon after the last slash starts the tag; one before it is a
	// registry port.
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

func (r *Runner) podDir(obj *corev1.Pod) string {
	uid := string(obj.UID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return filepath.Join(r.cfg.WorkDir, fmt.Sprintf("%s_%s_%s", obj.Namespace, obj.Name, uid))
}

// EchoBasicImage is the repository of the conformance suite's echo backend.
const EchoBasicImage = "registry.k8s.io/gateway-api/conformance/echo-basic"

// EchoBasic is the image table entry that runs the echo backend from bin
// (built by make conformance from sigs.k8s.io/gateway-api-conformance-images).
// It serves HTTP on 3000 in every mode but UDP_ECHO_SERVER, which serves
// UDP only.
func EchoBasic(bin string) Image {
	return Image{
		Binary:      bin,
		DefaultPort: 3000,
		NoReadyPort: func(env map[string]string) bool { return env["UDP_ECHO_SERVER"] != "" },
	}
}
