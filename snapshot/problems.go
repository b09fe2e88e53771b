package snapshot

import (
	"cmp"
	"fmt"
	"slices"
)

// Severity says whether a problem lost configuration.
type Severity string

const (
	// Warning: everything the object asked for is served, but something is
	// off (a missing Service answers 503, a certificate does not cover a host).
	Warning Severity = "Warning"
	// Error: part of the object is not served (an invalid path, a Secret that
	// does not parse without a last good version to keep).
	Error Severity = "Error"
)

// ObjectRef names the Kubernetes object a problem is about.
type ObjectRef struct {
	Kind, Namespace, Name string
}

func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Problem is one finding about one object, written where users look: a log
// line in every mode, an Event on the object when a cluster is attached.
type Problem struct {
	Object   ObjectRef
	Severity Severity
	// Reason is a short CamelCase cause, as in Kubernetes Events.
	Reason  string
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s: %s: %s", p.Severity, p.Object, p.Reason, p.Message)
}

// problems collects the findings of one build.
type problems []Problem

func (ps *problems) add(obj ObjectRef, sev Severity, reason, format string, args ...any) {
	*ps = append(*ps, Problem{Object: obj, Severity: sev, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (ps problems) sorted() []Problem {
	out := slices.Clone([]Problem(ps))
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Object.Kind, b.Object.Kind),
			cmp.Compare(a.Object.Namespace, b.Object.Namespace),
			cmp.Compare(a.Object.Name, b.Object.Name),
			cmp.Compare(a.Reason, b.Reason),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.CompactFunc(out, func(a, b Problem) bool { return a == b })
}
