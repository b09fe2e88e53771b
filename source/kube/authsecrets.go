package kube

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"portico.dev/portico/snapshot"
)

// namedWatches watches, one by one, objects Ingresses name in annotations:
// the Secrets of ingress-nginx's auth-secret (basic authentication users),
// proxy-ssl-secret (backend CA and client certificate, often Opaque) and
// auth-tls-secret (client certificate CAs; one of type kubernetes.io/tls
// already reaches the builder through the TLS Secret informers), and the
// ConfigMaps of custom-headers.
// The TLS Secret informers select their type on the server, but users are
// kept in Opaque Secrets, the type applications keep everything else in
// (database passwords, API keys), and a namespace's ConfigMaps hold every
// application's configuration: watching all of them would hold all of it
// in Portico's memory for the few named (the CA-bundle informer keeps
// nothing but ca.crt of the others). A watch per named object holds only
// those, at the cost of one watch on the API server per object named.
//
// It is used from the goroutine that builds Objects only.
type namedWatches[T any] struct {
	client kubernetes.Interface
	// namespaces are those watched; nil means all. An object elsewhere is
	// not watched (Portico may not read it) and so is reported missing.
	namespaces map[string]bool
	handler    cache.ResourceEventHandler
	log        *slog.Logger
	// what names the objects in the log ("Secrets named in auth-secret
	// annotations").
	what string
	// informer makes the informer of f's objects and their lookup.
	informer func(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(namespace, name string) (T, error))
	watches  map[types.NamespacedName]*namedWatch[T]
}

type namedWatch[T any] struct {
	factory informers.SharedInformerFactory
	get     func(namespace, name string) (T, error)
	stop    chan struct{}
}

// authSecretSyncTimeout bounds the wait for a newly named object before a
// snapshot is built without it; its arrival rebuilds again.
const authSecretSyncTimeout = 10 * time.Second

func newAuthSecrets(client kubernetes.Interface, handler cache.ResourceEventHandler, log *slog.Logger, namespaces map[string]bool) *namedWatches[*corev1.Secret] {
	return &namedWatches[*corev1.Secret]{client: client, handler: handler, log: log, namespaces: namespaces,
		what: "Secrets named in auth-secret, auth-tls-secret and proxy-ssl-secret annotations",
		informer: func(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, string) (*corev1.Secret, error)) {
			inf := f.Core().V1().Secrets()
			return inf.Informer(), func(ns, name string) (*corev1.Secret, error) { return inf.Lister().Secrets(ns).Get(name) }
		},
	}
}

func newHeaderConfigMaps(client kubernetes.Interface, handler cache.ResourceEventHandler, log *slog.Logger, namespaces map[string]bool) *namedWatches[*corev1.ConfigMap] {
	return &namedWatches[*corev1.ConfigMap]{client: client, handler: handler, log: log, namespaces: namespaces,
		what: "ConfigMaps named in custom-headers annotations",
		informer: func(f informers.SharedInformerFactory) (cache.SharedIndexInformer, func(string, string) (*corev1.ConfigMap, error)) {
			inf := f.Core().V1().ConfigMaps()
			return inf.Informer(), func(ns, name string) (*corev1.ConfigMap, error) { return inf.Lister().ConfigMaps(ns).Get(name) }
		},
	}
}

// authSecretsOf returns the Secrets ingresses name for authentication and
// backend TLS, watching them (see namedWatches.sync).
func authSecretsOf(ctx context.Context, w *namedWatches[*corev1.Secret], ingresses []*networkingv1.Ingress) []*corev1.Secret {
	var out []*corev1.Secret
	for _, s := range w.sync(ctx, ingresses, snapshot.NginxAuthSecret, snapshot.NginxProxySSLSecret, snapshot.NginxAuthTLSSecret) {
		if s.Type != corev1.SecretTypeTLS {
			out = append(out, s)
		}
	}
	return out
}

// sync watches the objects ingresses name (through named), stops watching
// those no longer named, and returns the named objects that exist.
func (n *namedWatches[T]) sync(ctx context.Context, ingresses []*networkingv1.Ingress, named ...func(*networkingv1.Ingress) (types.NamespacedName, bool)) []T {
	wanted := make(map[types.NamespacedName]bool)
	for _, ing := range ingresses {
		for _, name := range named {
			if k, ok := name(ing); ok && (n.namespaces == nil || n.namespaces[k.Namespace]) {
				wanted[k] = true
			}
		}
	}
	for k, w := range n.watches {
		if !wanted[k] {
			close(w.stop)
			w.factory.Shutdown()
			delete(n.watches, k)
		}
	}
	var started []cache.InformerSynced
	for k := range wanted {
		if n.watches[k] != nil {
			continue
		}
		name := fields.OneTermEqualSelector("metadata.name", k.Name).String()
		f := informers.NewSharedInformerFactoryWithOptions(n.client, 0, informers.WithNamespace(k.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = name }))
		inf, get := n.informer(f)
		_, _ = inf.AddEventHandler(n.handler)
		w := &namedWatch[T]{factory: f, get: get, stop: make(chan struct{})}
		f.Start(w.stop)
		started = append(started, inf.HasSynced)
		if n.watches == nil {
			n.watches = make(map[types.NamespacedName]*namedWatch[T])
		}
		n.watches[k] = w
	}
	if len(started) > 0 {
		wait, cancel := context.WithTimeout(ctx, authSecretSyncTimeout)
		if !cache.WaitForCacheSync(wait.Done(), started...) && ctx.Err() == nil {
			n.log.Warn(n.what + " not listed in time; they are read when they arrive")
		}
		cancel()
	}
	var out []T
	for k, w := range n.watches {
		// The field selector is the filter; this guards against a server
		// that ignores it.
		if obj, err := w.get(k.Namespace, k.Name); err == nil {
			out = append(out, obj)
		}
	}
	return out
}

// stopAll ends every watch.
func (n *namedWatches[T]) stopAll() {
	for k, w := range n.watches {
		close(w.stop)
		w.factory.Shutdown()
		delete(n.watches, k)
	}
}
