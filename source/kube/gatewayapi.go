package kube

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"portico.dev/portico/snapshot"
)

// defaultDiscoveryInterval is how often the source asks the API server
// whether the Gateway API CRDs appeared or went away. Installing them is
// rare; a few seconds' delay before the first Gateway is served is fine.
const defaultDiscoveryInterval = 10 * time.Second

// gatewaySyncWait bounds how long the first snapshot waits for the Gateway
// API informers. They can fail to list for good (RBAC missing for the
// group); Ingresses must not wait for that. The informers keep trying and
// their objects join the next snapshot once listed.
const gatewaySyncWait = 30 * time.Second

// gatewayResources are the Gateway API resources read; the informers start
// only when the API server serves all of them.
var gatewayResources = []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"}

// optionalResources are the Gateway API resources read when the API server
// serves them in gateway.networking.k8s.io/v1; a cluster with older CRDs
// is served without them.
type optionalResources struct {
	// backendTLSPolicies (standard from Gateway API v1.4): without them
	// Gateways are served with plain backends only.
	backendTLSPolicies bool
	// listenerSets (standard from v1.5): without them Gateways have
	// only their own listeners.
	listenerSets bool
	// grpcRoutes (standard from v1.1): without them only HTTPRoutes are
	// served.
	grpcRoutes bool
	// tlsRoutes (gateway.networking.k8s.io/v1 from v1.5): without them
	// TLS listeners have no routes.
	tlsRoutes bool
	// clusterTrustBundles (certificates.k8s.io/v1, Kubernetes 1.37):
	// without them CA bundles come from ConfigMaps only.
	clusterTrustBundles bool
}

func (o optionalResources) String() string {
	var served []string
	if o.backendTLSPolicies {
		served = append(served, "backendtlspolicies")
	}
	if o.listenerSets {
		served = append(served, "listenersets")
	}
	if o.grpcRoutes {
		served = append(served, "grpcroutes")
	}
	if o.tlsRoutes {
		served = append(served, "tlsroutes")
	}
	if o.clusterTrustBundles {
		served = append(served, "clustertrustbundles.certificates.k8s.io")
	}
	if len(served) == 0 {
		return "none"
	}
	return strings.Join(served, ",")
}

// caBundleKey is the ConfigMap key CA bundles are read from; other keys
// are dropped from the cache.
const caBundleKey = "ca.crt"

// gatewayListers reads the Gateway API informers' caches (and the
// Namespaces', which only Gateway listeners' allowedRoutes selectors need).
type gatewayListers struct {
	gatewayClasses  func() ([]*gatewayv1.GatewayClass, error)
	gateways        []func() ([]*gatewayv1.Gateway, error)
	httpRoutes      []func() ([]*gatewayv1.HTTPRoute, error)
	referenceGrants []func() ([]*gatewayv1.ReferenceGrant, error)
	// backendTLSPolicies and listenerSets are empty when the API server
	// does not serve them.
	backendTLSPolicies []func() ([]*gatewayv1.BackendTLSPolicy, error)
	listenerSets       []func() ([]*gatewayv1.ListenerSet, error)
	grpcRoutes         []func() ([]*gatewayv1.GRPCRoute, error)
	tlsRoutes          []func() ([]*gatewayv1.TLSRoute, error)
	// clusterTrustBundles is nil when the API server does not serve them.
	clusterTrustBundles func() ([]*certificatesv1.ClusterTrustBundle, error)
	configMaps          []func() ([]*corev1.ConfigMap, error)
	namespaces          func() ([]*corev1.Namespace, error)
}

func (gl *gatewayListers) objects(o *snapshot.Objects) {
	o.GatewayClasses, _ = gl.gatewayClasses()
	o.Gateways = collect(gl.gateways)
	o.HTTPRoutes = collect(gl.httpRoutes)
	o.ReferenceGrants = collect(gl.referenceGrants)
	o.BackendTLSPolicies = collect(gl.backendTLSPolicies)
	o.ListenerSets = collect(gl.listenerSets)
	o.GRPCRoutes = collect(gl.grpcRoutes)
	o.TLSRoutes = collect(gl.tlsRoutes)
	if gl.clusterTrustBundles != nil {
		o.ClusterTrustBundles, _ = gl.clusterTrustBundles()
	}
	o.ConfigMaps = collect(gl.configMaps)
	o.Namespaces, _ = gl.namespaces()
}

// gatewayWatch starts the Gateway API informers when the API server serves
// the CRDs, and stops them when it no longer does, so that installing the
// CRDs into a running cluster needs no restart.
type gatewayWatch struct {
	source     *Source
	namespaces []string
	notify     func()
	listers    *atomic.Pointer[gatewayListers]
	log        *slog.Logger

	mu sync.Mutex
	// running is set while the informers run; cancel stops them.
	running bool
	// optional are the optional resources watched.
	optional  optionalResources
	cancel    context.CancelFunc
	factories []interface{ Shutdown() }
	// installed is the last answer discovery gave, to log changes once.
	installed *bool
	// closed is set when the source stops; nothing starts after it.
	closed bool
}

// poll checks discovery every interval until ctx ends.
func (w *gatewayWatch) poll(ctx context.Context, interval time.Duration) {
	_ = wait.PollUntilContextCancel(ctx, interval, false, func(ctx context.Context) (bool, error) {
		_ = w.check(ctx)  // a failed check keeps the current state
		return false, nil // until ctx ends
	})
}

// check asks discovery once and starts or stops the informers to match.
// When it starts them it waits (up to gatewaySyncWait) for their first
// list, and returns an error only if ctx ends meanwhile.
func (w *gatewayWatch) check(ctx context.Context) error {
	installed, missing, optional, err := w.discover(ctx)
	if err != nil {
		// The API server is unreachable or failing: keep whatever runs.
		w.log.Debug("Gateway API discovery failed; keeping the current state", "error", err)
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	if w.installed == nil || *w.installed != installed {
		if installed {
			w.log.Info("Gateway API CRDs found: watching GatewayClasses, Gateways, HTTPRoutes, GRPCRoutes and TLSRoutes (when served), ReferenceGrants, BackendTLSPolicies, ListenerSets and ClusterTrustBundles (when served), CA ConfigMaps and Namespaces",
				"optional", optional.String())
		} else {
			w.log.Warn("Gateway API CRDs (gateway.networking.k8s.io/v1) are not installed: serving Ingresses only, and checking again periodically",
				"missing", missing, "every", w.interval())
		}
		w.installed = &installed
	}
	switch {
	case installed && w.running && optional != w.optional:
		// An optional resource was installed or removed after the rest:
		// watch it, or stop, with a fresh set of informers.
		w.log.Info("optional Gateway API resources (gateway.networking.k8s.io/v1) changed; restarting the Gateway API informers",
			"was", w.optional.String(), "now", optional.String())
		w.stopLocked()
		return w.start(ctx, optional)
	case installed && !w.running:
		return w.start(ctx, optional)
	case !installed && w.running:
		w.stopLocked()
		w.listers.Store(nil)
		w.notify()
	}
	return nil
}

func (w *gatewayWatch) interval() time.Duration {
	if w.source.DiscoveryInterval > 0 {
		return w.source.DiscoveryInterval
	}
	return defaultDiscoveryInterval
}

// discover reports whether every resource in gatewayResources is served,
// which are missing, and which optional resources are served too.
func (w *gatewayWatch) discover(ctx context.Context) (installed bool, missing []string, optional optionalResources, err error) {
	disc := discovery.ToServerResourcesInterfaceWithContext(w.source.Client.Discovery())
	list, err := disc.ServerResourcesForGroupVersionWithContext(ctx, gatewayv1.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, gatewayResources, optionalResources{}, nil
	}
	if err != nil {
		return false, nil, optionalResources{}, err
	}
	served := make(map[string]bool, len(list.APIResources))
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	for _, r := range gatewayResources {
		if !served[r] {
			missing = append(missing, r)
		}
	}
	optional = optionalResources{backendTLSPolicies: served["backendtlspolicies"], listenerSets: served["listenersets"], grpcRoutes: served["grpcroutes"], tlsRoutes: served["tlsroutes"]}
	certs, err := disc.ServerResourcesForGroupVersionWithContext(ctx, certificatesv1.SchemeGroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, nil, optionalResources{}, err
	default:
		optional.clusterTrustBundles = slices.ContainsFunc(certs.APIResources, func(r metav1.APIResource) bool { return r.Name == "clustertrustbundles" })
	}
	return len(missing) == 0, missing, optional, nil
}

// start runs the informers and waits for their first list; the caller
// holds w.mu.
func (w *gatewayWatch) start(ctx context.Context, optional optionalResources) error {
	runCtx, cancel := context.WithCancel(ctx)
	var gl gatewayListers
	var synced []cache.InformerSynced
	// The initial lists' events would rebuild without these objects (the
	// listers are published only after the sync); the notify that follows
	// the sync covers them.
	var live atomic.Bool
	notify := func() {
		if live.Load() {
			w.notify()
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	watch := func(inf cache.SharedIndexInformer) {
		_, _ = inf.AddEventHandler(handler)
		synced = append(synced, inf.HasSynced)
	}
	publish := func() {
		live.Store(true)
		w.listers.Store(&gl)
		w.notify()
	}

	cluster := gatewayinformers.NewSharedInformerFactory(w.source.Gateway, 0)
	classes := cluster.Gateway().V1().GatewayClasses()
	watch(classes.Informer())
	gl.gatewayClasses = func() ([]*gatewayv1.GatewayClass, error) { return classes.Lister().List(labels.Everything()) }

	core := informers.NewSharedInformerFactory(w.source.Client, 0)
	namespaces := core.Core().V1().Namespaces()
	watch(namespaces.Informer())
	gl.namespaces = func() ([]*corev1.Namespace, error) { return namespaces.Lister().List(labels.Everything()) }
	if optional.clusterTrustBundles {
		bundles := core.Certificates().V1().ClusterTrustBundles()
		watch(bundles.Informer())
		gl.clusterTrustBundles = func() ([]*certificatesv1.ClusterTrustBundle, error) {
			return bundles.Lister().List(labels.Everything())
		}
	}

	factories := []interface {
		Start(<-chan struct{})
		Shutdown()
	}{cluster, core}
	for _, ns := range w.namespaces {
		f := gatewayinformers.NewSharedInformerFactoryWithOptions(w.source.Gateway, 0, gatewayinformers.WithNamespace(ns))
		factories = append(factories, f)
		gws := f.Gateway().V1().Gateways()
		routes := f.Gateway().V1().HTTPRoutes()
		grants := f.Gateway().V1().ReferenceGrants()
		for _, inf := range []cache.SharedIndexInformer{gws.Informer(), routes.Informer(), grants.Informer()} {
			watch(inf)
		}
		gl.gateways = append(gl.gateways, func() ([]*gatewayv1.Gateway, error) { return gws.Lister().List(labels.Everything()) })
		gl.httpRoutes = append(gl.httpRoutes, func() ([]*gatewayv1.HTTPRoute, error) { return routes.Lister().List(labels.Everything()) })
		gl.referenceGrants = append(gl.referenceGrants, func() ([]*gatewayv1.ReferenceGrant, error) {
			return grants.Lister().List(labels.Everything())
		})
		if optional.backendTLSPolicies {
			policies := f.Gateway().V1().BackendTLSPolicies()
			watch(policies.Informer())
			gl.backendTLSPolicies = append(gl.backendTLSPolicies, func() ([]*gatewayv1.BackendTLSPolicy, error) {
				return policies.Lister().List(labels.Everything())
			})
		}
		if optional.listenerSets {
			sets := f.Gateway().V1().ListenerSets()
			watch(sets.Informer())
			gl.listenerSets = append(gl.listenerSets, func() ([]*gatewayv1.ListenerSet, error) {
				return sets.Lister().List(labels.Everything())
			})
		}
		if optional.grpcRoutes {
			grpc := f.Gateway().V1().GRPCRoutes()
			watch(grpc.Informer())
			gl.grpcRoutes = append(gl.grpcRoutes, func() ([]*gatewayv1.GRPCRoute, error) {
				return grpc.Lister().List(labels.Everything())
			})
		}
		if optional.tlsRoutes {
			tls := f.Gateway().V1().TLSRoutes()
			watch(tls.Informer())
			gl.tlsRoutes = append(gl.tlsRoutes, func() ([]*gatewayv1.TLSRoute, error) {
				return tls.Lister().List(labels.Everything())
			})
		}

		// ConfigMaps hold the CA bundles of BackendTLSPolicies and of
		// Gateway client certificate validation. Only the bundle is kept:
		// the cache must not hold every application's configuration.
		nsCore := informers.NewSharedInformerFactoryWithOptions(w.source.Client, 0, informers.WithNamespace(ns),
			informers.WithTransform(caBundleOnly))
		factories = append(factories, nsCore)
		configMaps := nsCore.Core().V1().ConfigMaps()
		watch(configMaps.Informer())
		gl.configMaps = append(gl.configMaps, func() ([]*corev1.ConfigMap, error) {
			return configMaps.Lister().List(labels.Everything())
		})
	}
	w.factories = w.factories[:0]
	for _, f := range factories {
		f.Start(runCtx.Done())
		w.factories = append(w.factories, f)
	}
	w.running, w.cancel, w.optional = true, cancel, optional

	syncCtx, stopWaiting := context.WithTimeout(runCtx, gatewaySyncWait)
	defer stopWaiting()
	if cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		publish()
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	w.log.Warn("Gateway API objects could not be listed yet (is the role allowed to list and watch gateway.networking.k8s.io?); serving without them until they are",
		"waited", gatewaySyncWait)
	// The informers keep retrying: publish their objects once listed.
	go func() {
		if cache.WaitForCacheSync(runCtx.Done(), synced...) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if runCtx.Err() == nil {
				publish()
				w.log.Info("Gateway API objects listed")
			}
		}
	}()
	return nil
}

// stop ends the informers, if they run, for good.
func (w *gatewayWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.stopLocked()
}

func (w *gatewayWatch) stopLocked() {
	if !w.running {
		return
	}
	w.cancel()
	for _, f := range w.factories {
		f.Shutdown()
	}
	w.running, w.cancel, w.factories = false, nil, nil
}

// caBundleOnly is the ConfigMap informers' transform: it keeps the
// object's identity and its CA bundle, and drops every other key and the
// managed fields before the object is cached.
func caBundleOnly(obj any) (any, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		// A tombstone or another kind: cached as it is.
		return obj, nil
	}
	slim := &corev1.ConfigMap{TypeMeta: cm.TypeMeta, ObjectMeta: *cm.ObjectMeta.DeepCopy()}
	slim.ManagedFields = nil
	slim.Annotations = nil
	if v, ok := cm.Data[caBundleKey]; ok {
		slim.Data = map[string]string{caBundleKey: v}
	}
	return slim, nil
}
