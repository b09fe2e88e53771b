package kube

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"portico.dev/portico/snapshot"
)

// headerConfigMaps watches, one by one, the ConfigMaps Ingresses name in
// ingress-nginx's custom-headers annotation, for the same reason
// authSecrets watches Secrets one by one: a namespace's ConfigMaps hold
// every application's configuration, and only the few named are wanted
// whole (the CA-bundle informer keeps nothing but ca.crt of the others).
//
// It is used from the goroutine that builds Objects only.
type headerConfigMaps struct {
	client kubernetes.Interface
	// namespaces are those watched; nil means all. A ConfigMap elsewhere
	// is not watched and so is reported missing.
	namespaces map[string]bool
	handler    cache.ResourceEventHandler
	watches    map[types.NamespacedName]*configMapWatch
	log        *slog.Logger
}

type configMapWatch struct {
	factory informers.SharedInformerFactory
	lister  corelisters.ConfigMapLister
	stop    chan struct{}
}

// sync watches the ConfigMaps ingresses name, stops watching those no
// longer named, and returns the named ConfigMaps that exist.
func (h *headerConfigMaps) sync(ctx context.Context, ingresses []*networkingv1.Ingress) []*corev1.ConfigMap {
	wanted := make(map[types.NamespacedName]bool)
	for _, ing := range ingresses {
		if k, ok := snapshot.NginxCustomHeadersConfigMap(ing); ok && (h.namespaces == nil || h.namespaces[k.Namespace]) {
			wanted[k] = true
		}
	}
	for k, w := range h.watches {
		if !wanted[k] {
			close(w.stop)
			w.factory.Shutdown()
			delete(h.watches, k)
		}
	}
	var started []cache.InformerSynced
	for k := range wanted {
		if h.watches[k] != nil {
			continue
		}
		name := fields.OneTermEqualSelector("metadata.name", k.Name).String()
		f := informers.NewSharedInformerFactoryWithOptions(h.client, 0, informers.WithNamespace(k.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = name }))
		inf := f.Core().V1().ConfigMaps()
		_, _ = inf.Informer().AddEventHandler(h.handler)
		w := &configMapWatch{factory: f, lister: inf.Lister(), stop: make(chan struct{})}
		f.Start(w.stop)
		started = append(started, inf.Informer().HasSynced)
		if h.watches == nil {
			h.watches = make(map[types.NamespacedName]*configMapWatch)
		}
		h.watches[k] = w
	}
	if len(started) > 0 {
		wait, cancel := context.WithTimeout(ctx, authSecretSyncTimeout)
		if !cache.WaitForCacheSync(wait.Done(), started...) && ctx.Err() == nil {
			h.log.Warn("ConfigMaps named in custom-headers annotations not listed in time; they are read when they arrive")
		}
		cancel()
	}
	var out []*corev1.ConfigMap
	for k, w := range h.watches {
		// The field selector is the filter; this guards against a server
		// that ignores it.
		if cm, err := w.lister.ConfigMaps(k.Namespace).Get(k.Name); err == nil {
			out = append(out, cm)
		}
	}
	return out
}

// stopAll ends every watch.
func (h *headerConfigMaps) stopAll() {
	for k, w := range h.watches {
		close(w.stop)
		w.factory.Shutdown()
		delete(h.watches, k)
	}
}
