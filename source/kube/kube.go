// Package kube is the Kubernetes API source: client-go shared informers for
// the objects the snapshot builder reads, with bursts of events coalesced
// into one rebuild. It feeds the same builder as the manifest folder, so the
// two modes share everything after the source.
//
// The Gateway API objects (GatewayClasses, Gateways, HTTPRoutes,
// ReferenceGrants, and Namespaces for allowedRoutes selectors) are watched
// through the gateway-api clientset only while the API server serves their
// CRDs: discovery is asked again periodically, so CRDs installed (or
// removed) after start-up are picked up without a restart.
//
// When the API server goes away, the informers retry on their own and the
// last snapshot built keeps serving; nothing here needs to react.
package kube

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"portico.dev/portico/snapshot"
)

// Defaults for coalescing events.
const (
	// defaultQuiet is how long the source waits for more events before it
	// rebuilds: a rollout or a Helm release changes many objects at once.
	defaultQuiet = 100 * time.Millisecond
	// defaultMaxDelay bounds how long a steady stream of events can hold
	// a rebuild back.
	defaultMaxDelay = time.Second
)

// tlsSecrets selects only TLS Secrets on the server side: clusters hold many
// other Secrets (Helm releases, tokens) that Portico must not keep in memory.
var tlsSecrets = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()

// Source watches the API server.
type Source struct {
	Client kubernetes.Interface
	// Gateway reads the Gateway API objects; nil leaves Gateway API
	// support off. The CRDs need not be installed: see gatewayWatch.
	Gateway gatewayclient.Interface
	// Namespaces limits the namespaced objects watched; empty means all.
	// IngressClasses, GatewayClasses and Namespaces are cluster-scoped and
	// always watched.
	Namespaces []string
	// Quiet and MaxDelay coalesce events into rebuilds; zero means
	// defaultQuiet (100 ms) and defaultMaxDelay (1 s).
	Quiet    time.Duration
	MaxDelay time.Duration
	// DiscoveryInterval is how often the API server is asked whether the
	// Gateway API CRDs were installed (or removed); zero means 10 s.
	DiscoveryInterval time.Duration
	// NginxConfigMap names ingress-nginx's controller ConfigMap, watched
	// on its own (whatever Namespaces says) and handed over in full
	// among Objects.ConfigMaps; the zero value watches none.
	NginxConfigMap types.NamespacedName
	Logger         *slog.Logger
}

// listers reads the informers' caches.
type listers struct {
	ingresses      []func() ([]*networkingv1.Ingress, error)
	services       []func() ([]*corev1.Service, error)
	endpoints      []func() ([]*corev1.Endpoints, error)
	endpointSlices []func() ([]*discoveryv1.EndpointSlice, error)
	secrets        []func() ([]*corev1.Secret, error)
	ingressClasses func() ([]*networkingv1.IngressClass, error)
	// auth watches the Secrets Ingresses name for authentication and
	// backend TLS.
	auth *namedWatches[*corev1.Secret]
	// headers watches the ConfigMaps Ingresses name for custom-headers.
	headers *namedWatches[*corev1.ConfigMap]
	// nginxConfigMap lists ingress-nginx's ConfigMap (one object at most).
	nginxConfigMap     func() ([]*corev1.ConfigMap, error)
	nginxConfigMapName string
	// gateway is set while the Gateway API informers run and have synced.
	gateway atomic.Pointer[gatewayListers]
}

// Run starts the informers, waits for their first sync, calls onChange with
// the objects, and again after every burst of changes, until ctx ends. It
// returns an error only if ctx ends before the first sync.
func (s *Source) Run(ctx context.Context, onChange func(snapshot.Objects)) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("source", "kubernetes")
	quiet, maxDelay := s.Quiet, s.MaxDelay
	if quiet <= 0 {
		quiet = defaultQuiet
	}
	if maxDelay < quiet {
		maxDelay = max(defaultMaxDelay, quiet)
	}

	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}

	var ls listers
	var factories []informers.SharedInformerFactory
	var synced []cache.InformerSynced
	watch := func(inf cache.SharedIndexInformer) {
		// Resync never changes an object; it would only rebuild for nothing.
		_, _ = inf.AddEventHandler(handler)
		synced = append(synced, inf.HasSynced)
	}

	cluster := informers.NewSharedInformerFactory(s.Client, 0)
	factories = append(factories, cluster)
	classes := cluster.Networking().V1().IngressClasses()
	watch(classes.Informer())
	ls.ingressClasses = func() ([]*networkingv1.IngressClass, error) { return classes.Lister().List(labels.Everything()) }

	namespaces := s.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var watched map[string]bool
	if len(s.Namespaces) > 0 {
		watched = make(map[string]bool)
		for _, ns := range s.Namespaces {
			watched[ns] = true
		}
	}
	ls.auth = newAuthSecrets(s.Client, handler, log, watched)
	defer ls.auth.stopAll()
	ls.headers = newHeaderConfigMaps(s.Client, handler, log, watched)
	defer ls.headers.stopAll()
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(ns))
		sf := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = tlsSecrets }))
		factories = append(factories, f, sf)

		ing := f.Networking().V1().Ingresses()
		svc := f.Core().V1().Services()
		eps := f.Core().V1().Endpoints()
		slc := f.Discovery().V1().EndpointSlices()
		sec := sf.Core().V1().Secrets()
		for _, inf := range []cache.SharedIndexInformer{ing.Informer(), svc.Informer(), eps.Informer(), slc.Informer(), sec.Informer()} {
			watch(inf)
		}
		ls.ingresses = append(ls.ingresses, func() ([]*networkingv1.Ingress, error) { return ing.Lister().List(labels.Everything()) })
		ls.services = append(ls.services, func() ([]*corev1.Service, error) { return svc.Lister().List(labels.Everything()) })
		ls.endpoints = append(ls.endpoints, func() ([]*corev1.Endpoints, error) { return eps.Lister().List(labels.Everything()) })
		ls.endpointSlices = append(ls.endpointSlices, func() ([]*discoveryv1.EndpointSlice, error) {
			return slc.Lister().List(labels.Everything())
		})
		ls.secrets = append(ls.secrets, func() ([]*corev1.Secret, error) { return sec.Lister().List(labels.Everything()) })
	}

	if cm := s.NginxConfigMap; cm.Name != "" {
		// One object, selected by name on the server: one more watch
		// connection and one ConfigMap in memory, where the namespace's
		// ConfigMap informer (Gateway API CA bundles, stripped to their
		// bundle) would cache every application's configuration.
		f := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(cm.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cm.Name).String()
			}))
		factories = append(factories, f)
		cms := f.Core().V1().ConfigMaps()
		watch(cms.Informer())
		ls.nginxConfigMap = func() ([]*corev1.ConfigMap, error) { return cms.Lister().List(labels.Everything()) }
		ls.nginxConfigMapName = cm.Name
	}

	for _, f := range factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range factories {
			f.Shutdown()
		}
	}()
	start := time.Now()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.New("stopped before the first sync with the API server")
	}
	if s.Gateway != nil {
		gw := &gatewayWatch{source: s, namespaces: namespaces, notify: notify, listers: &ls.gateway, log: log}
		defer gw.stop()
		// Before the first snapshot, so that it already holds the Gateways
		// when the CRDs are installed.
		if err := gw.check(ctx); err != nil {
			return err
		}
		go gw.poll(ctx, gw.interval())
	}
	log.Info("synced with the API server", "took", time.Since(start).Round(time.Millisecond), "namespaces", namespaces)

	// Events from the initial lists are already in the caches.
	select {
	case <-changed:
	default:
	}
	onChange(ls.objects(ctx))

	coalesce(ctx, changed, quiet, maxDelay, func() { onChange(ls.objects(ctx)) })
	return nil
}

// coalesce calls rebuild once per burst of signals on changed: after quiet
// passes with no new signal, or maxDelay after the first signal of the
// burst, whichever comes first.
func coalesce(ctx context.Context, changed <-chan struct{}, quiet, maxDelay time.Duration, rebuild func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		deadline := time.NewTimer(maxDelay)
		idle := time.NewTimer(quiet)
	burst:
		for {
			select {
			case <-ctx.Done():
				deadline.Stop()
				idle.Stop()
				return
			case <-changed:
				idle.Reset(quiet)
			case <-idle.C:
				break burst
			case <-deadline.C:
				break burst
			}
		}
		deadline.Stop()
		idle.Stop()
		rebuild()
	}
}

// objects lists the caches. Listing a cache with labels.Everything cannot
// fail; the errors exist only in the lister's signature.
func (ls *listers) objects(ctx context.Context) snapshot.Objects {
	var o snapshot.Objects
	o.IngressClasses, _ = ls.ingressClasses()
	o.Ingresses = collect(ls.ingresses)
	o.Services = collect(ls.services)
	o.Endpoints = collect(ls.endpoints)
	o.EndpointSlices = collect(ls.endpointSlices)
	o.Secrets = collect(ls.secrets)
	// The field selector is the filter; this guards against a server that
	// ignores it.
	o.Secrets = slices.DeleteFunc(o.Secrets, func(s *corev1.Secret) bool { return s.Type != corev1.SecretTypeTLS })
	o.Secrets = append(o.Secrets, authSecretsOf(ctx, ls.auth, o.Ingresses)...)
	if gw := ls.gateway.Load(); gw != nil {
		gw.objects(&o)
	}
	for _, cm := range ls.headers.sync(ctx, o.Ingresses, snapshot.NginxCustomHeadersConfigMap) {
		// The full copy replaces the CA-bundle informer's stripped one.
		o.ConfigMaps = slices.DeleteFunc(o.ConfigMaps, func(c *corev1.ConfigMap) bool {
			return c.Namespace == cm.Namespace && c.Name == cm.Name
		})
		o.ConfigMaps = append(o.ConfigMaps, cm)
	}
	if ls.nginxConfigMap != nil {
		cms, _ := ls.nginxConfigMap()
		// The field selector is the filter; this guards against a server
		// that ignores it.
		cms = slices.DeleteFunc(cms, func(c *corev1.ConfigMap) bool { return c.Name != ls.nginxConfigMapName })
		for _, cm := range cms {
			// The full copy replaces the CA-bundle informer's stripped one.
			o.ConfigMaps = slices.DeleteFunc(o.ConfigMaps, func(c *corev1.ConfigMap) bool {
				return c.Namespace == cm.Namespace && c.Name == cm.Name
			})
			o.ConfigMaps = append(o.ConfigMaps, cm)
		}
	}
	return o
}

func collect[T any](lists []func() ([]T, error)) []T {
	var out []T
	for _, list := range lists {
		items, _ := list()
		out = append(out, items...)
	}
	return out
}
