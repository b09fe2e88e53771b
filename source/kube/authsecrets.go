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
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"portico.dev/portico/snapshot"
)

// authSecrets watches, one by one, the Secrets Ingresses name in
// ingress-nginx's auth-secret annotation (basic authentication users),
// proxy-ssl-secret one (backend CA and client certificate, often Opaque)
// and auth-tls-secret one (client certificate CAs; one of type
// kubernetes.io/tls already reaches the builder through the TLS Secret
// informers).
// The TLS Secret informers select their type on the server, but users are
// kept in Opaque Secrets, the type applications keep everything else in
// (database passwords, API keys): watching every Opaque Secret would hold
// all of them in Portico's memory for the few that hold htpasswd lines. A
// watch per named Secret holds only those, at the cost of one watch on the
// API server per Secret named.
//
// It is used from the goroutine that builds Objects only.
type authSecrets struct {
	client kubernetes.Interface
	// namespaces are those watched; nil means all. A Secret elsewhere is
	// not watched (Portico may not read it) and so is reported missing.
	namespaces map[string]bool
	handler    cache.ResourceEventHandler
	watches    map[types.NamespacedName]*secretWatch
	log        *slog.Logger
}

type secretWatch struct {
	factory informers.SharedInformerFactory
	lister  corelisters.SecretLister
	stop    chan struct{}
}

// authSecretSyncTimeout bounds the wait for a newly named Secret before a
// snapshot is built without it; its arrival rebuilds again.
const authSecretSyncTimeout = 10 * time.Second

// sync watches the Secrets ingresses name, stops watching those no longer
// named, and returns the named Secrets that exist.
func (a *authSecrets) sync(ctx context.Context, ingresses []*networkingv1.Ingress) []*corev1.Secret {
	wanted := make(map[types.NamespacedName]bool)
	for _, ing := range ingresses {
		for _, named := range []func(*networkingv1.Ingress) (types.NamespacedName, bool){snapshot.NginxAuthSecret, snapshot.NginxProxySSLSecret, snapshot.NginxAuthTLSSecret} {
			if sk, ok := named(ing); ok && (a.namespaces == nil || a.namespaces[sk.Namespace]) {
				wanted[sk] = true
			}
		}
	}
	for sk, w := range a.watches {
		if !wanted[sk] {
			close(w.stop)
			w.factory.Shutdown()
			delete(a.watches, sk)
		}
	}
	var started []cache.InformerSynced
	for sk := range wanted {
		if a.watches[sk] != nil {
			continue
		}
		name := fields.OneTermEqualSelector("metadata.name", sk.Name).String()
		f := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithNamespace(sk.Namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = name }))
		inf := f.Core().V1().Secrets()
		_, _ = inf.Informer().AddEventHandler(a.handler)
		w := &secretWatch{factory: f, lister: inf.Lister(), stop: make(chan struct{})}
		f.Start(w.stop)
		started = append(started, inf.Informer().HasSynced)
		if a.watches == nil {
			a.watches = make(map[types.NamespacedName]*secretWatch)
		}
		a.watches[sk] = w
	}
	if len(started) > 0 {
		wait, cancel := context.WithTimeout(ctx, authSecretSyncTimeout)
		if !cache.WaitForCacheSync(wait.Done(), started...) && ctx.Err() == nil {
			a.log.Warn("Secrets named in auth-secret annotations not listed in time; they are read when they arrive")
		}
		cancel()
	}
	var out []*corev1.Secret
	for sk, w := range a.watches {
		// The field selector is the filter; this guards against a server
		// that ignores it.
		if s, err := w.lister.Secrets(sk.Namespace).Get(sk.Name); err == nil && s.Type != corev1.SecretTypeTLS {
			out = append(out, s)
		}
	}
	return out
}

// stopAll ends every watch.
func (a *authSecrets) stopAll() {
	for sk, w := range a.watches {
		close(w.stop)
		w.factory.Shutdown()
		delete(a.watches, sk)
	}
}
