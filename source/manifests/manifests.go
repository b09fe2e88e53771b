// Package manifests owns Portico's embedded configuration source: a folder of
// Kubernetes manifests (YAML or JSON) read into snapshot.Objects and watched
// so edits apply live, without a cluster.
//
// The folder is read the way the API server would accept the same objects:
// typed decoding with the client-go and Gateway API (v1) schemes, namespaces
// and the Gateway API CRDs' schema defaults applied, Secret stringData folded
// into data, one object per kind/namespace/name. A bad file
// or document is reported and skipped, never fatal, and a file that stops
// parsing mid-edit keeps serving its last version that did.
package manifests

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"portico.dev/portico/snapshot"
)

// defaultInterval is how often Source polls the folder when Interval is zero.
const defaultInterval = 250 * time.Millisecond

// Problem is one thing wrong with the folder's content: a file that cannot
// be read, a document that does not decode, a duplicate object.
type Problem struct {
	// File is the path of the file (or folder) at fault.
	File string
	// Doc is the 1-based number of the YAML document in File, or 0 when
	// the problem is about the whole file.
	Doc int
	// Object is "Kind namespace/name" (or just "Kind name" for cluster-scoped
	// kinds) when known.
	Object string
	Err    error
}

// String gives the problem as one line: "file: document N: Object: error".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", p.Doc)
	}
	if p.Object != "" {
		b.WriteString(": ")
		b.WriteString(p.Object)
	}
	b.WriteString(": ")
	if p.Err != nil {
		// Decoder errors can span lines; a problem is one log line.
		b.WriteString(strings.Join(strings.Fields(p.Err.Error()), " "))
	} else {
		b.WriteString("unknown error")
	}
	return b.String()
}

func (p Problem) attrs() []any {
	attrs := []any{slog.String("file", p.File)}
	if p.Doc > 0 {
		attrs = append(attrs, slog.Int("doc", p.Doc))
	}
	if p.Object != "" {
		attrs = append(attrs, slog.String("object", p.Object))
	}
	return append(attrs, slog.Any("err", p.Err))
}

// Load reads every manifest under dir once. It fails only when dir itself
// cannot be read (the caller exits with that one-line reason); a bad file or
// document is reported in problems and skipped, never fatal.
func Load(dir string) (snapshot.Objects, []Problem, error) {
	l := newLoader(dir)
	if _, err := l.scan(time.Time{}); err != nil {
		return snapshot.Objects{}, nil, fmt.Errorf("reading manifest folder: %w", err)
	}
	objs, duplicates := l.assemble()
	return objs, l.allProblems(duplicates), nil
}

// Source watches a manifest folder.
type Source struct {
	// Dir is the folder to read, recursively.
	Dir string
	// Interval between polls; 250 ms when zero.
	Interval time.Duration
	// Logger receives problems and changes; slog.Default() when nil.
	Logger *slog.Logger
}

// Run calls onChange with the first load, then again whenever the folder's
// content changes (and only then), until ctx ends. Problems are logged once
// per (file, change), with the file name and object name, not on every poll.
//
// onChange runs on Run's goroutine: polling waits while it runs. The Objects
// it receives share decoded objects with later calls and must not be
// mutated. Run returns an error only when the folder cannot be read at the
// start; once running, an unreadable folder keeps the last objects and is
// retried. It returns nil when ctx ends.
func (s *Source) Run(ctx context.Context, onChange func(snapshot.Objects)) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String("source", "manifests"), slog.String("dir", s.Dir))
	interval := s.Interval
	if interval <= 0 {
		interval = defaultInterval
	}

	w := watcher{loader: newLoader(s.Dir), log: log, logged: map[string]bool{}}
	res, err := w.loader.scan(time.Now())
	if err != nil {
		return fmt.Errorf("reading manifest folder: %w", err)
	}
	objs := w.apply(res)
	w.logObjects("loaded manifests", objs)
	onChange(objs)
	last := objs

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	folderUnreadable := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		res, err := w.loader.scan(time.Now())
		if err != nil {
			if !folderUnreadable {
				log.Warn("cannot read manifest folder; keeping the current configuration", slog.Any("err", err))
				folderUnreadable = true
			}
			continue
		}
		if folderUnreadable {
			log.Info("manifest folder readable again")
			folderUnreadable = false
		}
		if !res.dirty {
			continue
		}
		objs := w.apply(res)
		if equality.Semantic.DeepEqual(objs, last) {
			continue
		}
		w.logObjects("manifests changed", objs)
		onChange(objs)
		last = objs
	}
}

// watcher carries Run's logging state.
type watcher struct {
	loader *loader
	log    *slog.Logger
	// logged holds the folder-wide problems (duplicates, unreadable
	// subfolders) already logged, so they are logged when they appear
	// rather than on every change.
	logged map[string]bool
}

// apply logs what a scan found and assembles the resulting objects.
func (w *watcher) apply(res scanResult) snapshot.Objects {
	for _, path := range res.removed {
		w.log.Info("manifest file removed", slog.String("file", path))
	}
	for _, st := range res.reread {
		w.log.Debug("manifest file read", slog.String("file", st.found.path), slog.Int("objects", len(st.entries)))
		for _, p := range st.problems {
			w.log.Warn("manifest problem", p.attrs()...)
		}
		for _, n := range st.notes {
			attrs := []any{slog.String("file", st.found.path), slog.Int("doc", n.doc)}
			if n.object != "" {
				attrs = append(attrs, slog.String("object", n.object))
			}
			w.log.Log(context.Background(), n.level, n.msg, attrs...)
		}
	}

	objs, duplicates := w.loader.assemble()
	current := make(map[string]bool, len(duplicates)+len(w.loader.walkProblems))
	for _, group := range [][]Problem{w.loader.walkProblems, duplicates} {
		for _, p := range group {
			key := p.String()
			current[key] = true
			if !w.logged[key] {
				w.log.Warn("manifest problem", p.attrs()...)
			}
		}
	}
	w.logged = current
	return objs
}

func (w *watcher) logObjects(msg string, objs snapshot.Objects) {
	w.log.Info(msg,
		slog.Int("files", len(w.loader.order)),
		slog.Int("ingresses", len(objs.Ingresses)),
		slog.Int("ingressClasses", len(objs.IngressClasses)),
		slog.Int("services", len(objs.Services)),
		slog.Int("endpoints", len(objs.Endpoints)),
		slog.Int("endpointSlices", len(objs.EndpointSlices)),
		slog.Int("secrets", len(objs.Secrets)),
		slog.Int("gatewayClasses", len(objs.GatewayClasses)),
		slog.Int("gateways", len(objs.Gateways)),
		slog.Int("httpRoutes", len(objs.HTTPRoutes)),
		slog.Int("grpcRoutes", len(objs.GRPCRoutes)),
		slog.Int("tlsRoutes", len(objs.TLSRoutes)),
	)
}
