package status

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"portico.dev/portico/hack/controlplane"
	"portico.dev/portico/snapshot"
)

const ourController gatewayv1.GatewayController = "portico.dev/gateway-controller"

var (
	t0 = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 = metav1.NewTime(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
)

func cond(typ string, status metav1.ConditionStatus, reason, msg string, at metav1.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: at, ObservedGeneration: 1}
}

func TestMergeConditions(t *testing.T) {
	accepted := cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", t0)
	cases := []struct {
		name          string
		current, want []metav1.Condition
		expect        []metav1.Condition
	}{
		{
			name:   "new condition is stamped",
			want:   []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", metav1.Time{})},
			expect: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", t1)},
		},
		{
			name:    "unchanged condition keeps its time",
			current: []metav1.Condition{accepted},
			want:    []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", metav1.Time{})},
			expect:  []metav1.Condition{accepted},
		},
		{
			name:    "a new generation alone keeps the time",
			current: []metav1.Condition{accepted},
			want: []metav1.Condition{func() metav1.Condition {
				c := cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", metav1.Time{})
				c.ObservedGeneration = 2
				return c
			}()},
			expect: []metav1.Condition{func() metav1.Condition { c := accepted; c.ObservedGeneration = 2; return c }()},
		},
		{
			name:    "changed status, reason or message is stamped",
			current: []metav1.Condition{accepted, cond("Programmed", metav1.ConditionTrue, "Programmed", "", t0), cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "", t0)},
			want: []metav1.Condition{
				cond("Accepted", metav1.ConditionFalse, "Accepted", "ok", metav1.Time{}),
				cond("Programmed", metav1.ConditionTrue, "Pending", "", metav1.Time{}),
				cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "now with a message", metav1.Time{}),
			},
			expect: []metav1.Condition{
				cond("Accepted", metav1.ConditionFalse, "Accepted", "ok", t1),
				cond("Programmed", metav1.ConditionTrue, "Pending", "", t1),
				cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "now with a message", t1),
			},
		},
		{
			name:    "conditions no longer wanted are dropped",
			current: []metav1.Condition{accepted, cond("Stale", metav1.ConditionTrue, "X", "", t0)},
			want:    []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", metav1.Time{})},
			expect:  []metav1.Condition{accepted},
		},
	}
	for _, tc := range cases {
		got := mergeConditions(tc.current, tc.want, t1)
		if !equality.Semantic.DeepEqual(got, tc.expect) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.expect)
		}
	}
}

func TestMergeOwnedConditions(t *testing.T) {
	accepted := cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", t0)
	theirs := cond("example.com/Audited", metav1.ConditionTrue, "Seeded", "", t0)
	owned := conditionTypes("Accepted", "Programmed")
	cases := []struct {
		name          string
		current, want []metav1.Condition
		expect        []metav1.Condition
	}{
		{
			name:    "another controller's condition is kept, before ours",
			current: []metav1.Condition{accepted, theirs},
			want:    []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", metav1.Time{})},
			expect:  []metav1.Condition{theirs, accepted},
		},
		{
			name:    "an owned type we no longer write is dropped",
			current: []metav1.Condition{accepted, cond("Programmed", metav1.ConditionTrue, "Programmed", "", t0)},
			want:    []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", "ok", metav1.Time{})},
			expect:  []metav1.Condition{accepted},
		},
		{
			name:    "a type we write is ours even outside the owned set",
			current: []metav1.Condition{cond("example.com/Audited", metav1.ConditionFalse, "Old", "", t0)},
			want:    []metav1.Condition{cond("example.com/Audited", metav1.ConditionTrue, "New", "", metav1.Time{})},
			expect:  []metav1.Condition{cond("example.com/Audited", metav1.ConditionTrue, "New", "", t1)},
		},
	}
	for _, tc := range cases {
		got := mergeOwnedConditions(tc.current, tc.want, owned, t1)
		if !equality.Semantic.DeepEqual(got, tc.expect) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.expect)
		}
	}
}

func parent(name string, controller gatewayv1.GatewayController, conds ...metav1.Condition) gatewayv1.RouteParentStatus {
	return gatewayv1.RouteParentStatus{
		ParentRef:      gatewayv1.ParentReference{Name: gatewayv1.ObjectName(name)},
		ControllerName: controller,
		Conditions:     conds,
	}
}

func TestDesiredRouteParents(t *testing.T) {
	accepted := cond("Accepted", metav1.ConditionTrue, "Accepted", "", t0)
	theirs := parent("their-gw", "example.com/other", cond("Accepted", metav1.ConditionFalse, "NotAllowed", "", t0))
	cases := []struct {
		name    string
		current []gatewayv1.RouteParentStatus
		want    []gatewayv1.RouteParentStatus
		expect  []gatewayv1.RouteParentStatus
	}{
		{
			name:    "ours are added after theirs",
			current: []gatewayv1.RouteParentStatus{theirs},
			want:    []gatewayv1.RouteParentStatus{parent("edge", ourController, cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{}))},
			expect:  []gatewayv1.RouteParentStatus{theirs, parent("edge", ourController, cond("Accepted", metav1.ConditionTrue, "Accepted", "", t1))},
		},
		{
			name:    "unchanged entries keep their times",
			current: []gatewayv1.RouteParentStatus{parent("edge", ourController, accepted), theirs},
			want:    []gatewayv1.RouteParentStatus{parent("edge", ourController, cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{}))},
			expect:  []gatewayv1.RouteParentStatus{theirs, parent("edge", ourController, accepted)},
		},
		{
			name:    "ours for a parent no longer referenced are removed, theirs stay",
			current: []gatewayv1.RouteParentStatus{parent("old", ourController, accepted), theirs},
			expect:  []gatewayv1.RouteParentStatus{theirs},
		},
		{
			name:    "a route that is no longer ours loses all our entries",
			current: []gatewayv1.RouteParentStatus{parent("edge", ourController, accepted)},
			expect:  []gatewayv1.RouteParentStatus{},
		},
	}
	for _, tc := range cases {
		got := desiredRouteParents(tc.current, ourController, tc.want, t1)
		if !equality.Semantic.DeepEqual(got, tc.expect) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.expect)
		}
	}
}

func ancestor(name string, controller gatewayv1.GatewayController, conds ...metav1.Condition) gatewayv1.PolicyAncestorStatus {
	return gatewayv1.PolicyAncestorStatus{
		AncestorRef:    gatewayv1.ParentReference{Name: gatewayv1.ObjectName(name)},
		ControllerName: controller,
		Conditions:     conds,
	}
}

func TestDesiredPolicyAncestors(t *testing.T) {
	accepted := cond("Accepted", metav1.ConditionTrue, "Accepted", "", t0)
	theirs := ancestor("their-gw", "example.com/other", cond("Accepted", metav1.ConditionTrue, "Accepted", "", t0))
	fresh := cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{})
	many := func(n int) []gatewayv1.PolicyAncestorStatus {
		var out []gatewayv1.PolicyAncestorStatus
		for i := range n {
			out = append(out, ancestor("gw-"+itoa(i), ourController, fresh))
		}
		return out
	}
	cases := []struct {
		name        string
		current     []gatewayv1.PolicyAncestorStatus
		want        []gatewayv1.PolicyAncestorStatus
		expect      []gatewayv1.PolicyAncestorStatus
		wantDropped int
	}{
		{
			name:    "ours follow theirs, unchanged ones keep their times",
			current: []gatewayv1.PolicyAncestorStatus{ancestor("edge", ourController, accepted), theirs},
			want:    []gatewayv1.PolicyAncestorStatus{ancestor("edge", ourController, fresh), ancestor("new", ourController, fresh)},
			expect: []gatewayv1.PolicyAncestorStatus{theirs, ancestor("edge", ourController, accepted),
				ancestor("new", ourController, cond("Accepted", metav1.ConditionTrue, "Accepted", "", t1))},
		},
		{
			name:    "ours no longer wanted are removed, theirs stay",
			current: []gatewayv1.PolicyAncestorStatus{ancestor("edge", ourController, accepted), theirs},
			expect:  []gatewayv1.PolicyAncestorStatus{theirs},
		},
		{
			name:        "a full list keeps theirs and as many of ours as fit",
			current:     []gatewayv1.PolicyAncestorStatus{theirs},
			want:        many(maxPolicyAncestors),
			wantDropped: 1,
		},
	}
	for _, tc := range cases {
		got, dropped := desiredPolicyAncestors(tc.current, ourController, tc.want, t1)
		if dropped != tc.wantDropped {
			t.Errorf("%s: dropped %d, want %d", tc.name, dropped, tc.wantDropped)
		}
		if tc.expect == nil {
			if len(got) != maxPolicyAncestors || !equality.Semantic.DeepEqual(got[0], theirs) {
				t.Errorf("%s: %d ancestors, first %+v", tc.name, len(got), got[0])
			}
			continue
		}
		if !equality.Semantic.DeepEqual(got, tc.expect) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.expect)
		}
	}
}

// TestWriteGatewayAPIStatus runs the writer against a real API server with
// the Gateway API CRDs installed, so that the schema's validation of the
// status subresource applies to what is written.
func TestWriteGatewayAPIStatus(t *testing.T) {
	ctx, kube, gw := startGatewayAPICluster(t)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	class, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: ourController},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gateway, err := gw.GatewayV1().Gateways("shop").Create(ctx, &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "portico",
			Listeners:        []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: 8000}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	route, err := gw.GatewayV1().HTTPRoutes("shop").Create(ctx, &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{
			{Name: "edge"}, {Name: "their-gw"},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Another controller already wrote its entry for its own Gateway.
	theirs := parent("their-gw", "example.com/other", cond("Accepted", metav1.ConditionFalse, "NotAllowedByListeners", "not for you", t0))
	theirs.ParentRef = route.Spec.ParentRefs[1]
	route.Status.Parents = []gatewayv1.RouteParentStatus{theirs}
	if route, err = gw.GatewayV1().HTTPRoutes("shop").UpdateStatus(ctx, route, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = gatewayv1.Install(scheme)
	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})

	now := t0.Time
	w := &Writer{
		Client: kube, Gateway: gw, GatewayController: ourController,
		Recorder: broadcaster.NewRecorder(scheme, corev1.EventSource{Component: "portico"}),
		Now:      func() time.Time { return now },
	}
	gen := func(c metav1.Condition, g int64) metav1.Condition { c.ObservedGeneration = g; return c }
	edge := types.NamespacedName{Namespace: "shop", Name: "edge"}
	web := types.NamespacedName{Namespace: "shop", Name: "web"}
	ourParent := gatewayv1.RouteParentStatus{
		ParentRef:      route.Spec.ParentRefs[0],
		ControllerName: ourController,
		Conditions: []metav1.Condition{
			gen(cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{}), route.Generation),
			gen(cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "", metav1.Time{}), route.Generation),
		},
	}
	snap := &snapshot.Snapshot{
		GatewayAPI: snapshot.GatewayAPIStatus{
			GatewayClasses: map[string]gatewayv1.GatewayClassStatus{"portico": {Conditions: []metav1.Condition{
				gen(cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{}), class.Generation),
			}}},
			Gateways: map[types.NamespacedName]gatewayv1.GatewayStatus{edge: {
				Addresses: []gatewayv1.GatewayStatusAddress{{Type: ptrTo(gatewayv1.IPAddressType), Value: "127.0.0.2"}},
				Conditions: []metav1.Condition{
					gen(cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{}), gateway.Generation),
					gen(cond("Programmed", metav1.ConditionTrue, "Programmed", "", metav1.Time{}), gateway.Generation),
				},
				Listeners: []gatewayv1.ListenerStatus{{
					Name:           "http",
					SupportedKinds: []gatewayv1.RouteGroupKind{{Group: ptrTo(gatewayv1.Group(gatewayv1.GroupName)), Kind: "HTTPRoute"}},
					AttachedRoutes: 1,
					Conditions: []metav1.Condition{
						gen(cond("Accepted", metav1.ConditionTrue, "Accepted", "", metav1.Time{}), gateway.Generation),
						gen(cond("Programmed", metav1.ConditionTrue, "Programmed", "", metav1.Time{}), gateway.Generation),
						gen(cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "", metav1.Time{}), gateway.Generation),
					},
				}},
			}},
			HTTPRoutes: map[types.NamespacedName][]gatewayv1.RouteParentStatus{web: {ourParent}},
		},
		Problems: []snapshot.Problem{{
			Object: snapshot.ObjectRef{Kind: "HTTPRoute", Namespace: "shop", Name: "web"}, Severity: snapshot.Warning,
			Reason: "BackendNotFound", Message: "Service shop/web not found",
		}},
	}

	// The objects as an informer would hold them.
	objects := func() snapshot.Objects {
		c, err := gw.GatewayV1().GatewayClasses().Get(ctx, "portico", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g, err := gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return snapshot.Objects{GatewayClasses: []*gatewayv1.GatewayClass{c}, Gateways: []*gatewayv1.Gateway{g}, HTTPRoutes: []*gatewayv1.HTTPRoute{r}}
	}
	versions := func(o snapshot.Objects) [3]string {
		return [3]string{o.GatewayClasses[0].ResourceVersion, o.Gateways[0].ResourceVersion, o.HTTPRoutes[0].ResourceVersion}
	}

	// The first write replaces the CRD's "Pending" defaults.
	stale := objects()
	if err := w.Sync(ctx, stale, snap); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	written := objects()
	assertCondition(t, "GatewayClass", written.GatewayClasses[0].Status.Conditions, "Accepted", metav1.ConditionTrue, t0)
	assertCondition(t, "Gateway", written.Gateways[0].Status.Conditions, "Programmed", metav1.ConditionTrue, t0)
	assertCondition(t, "Gateway listener", written.Gateways[0].Status.Listeners[0].Conditions, "Accepted", metav1.ConditionTrue, t0)
	if got := written.Gateways[0].Status.Addresses; len(got) != 1 || got[0].Value != "127.0.0.2" {
		t.Errorf("gateway addresses %v", got)
	}
	parents := written.HTTPRoutes[0].Status.Parents
	if len(parents) != 2 || !equality.Semantic.DeepEqual(parents[0], theirs) || parents[1].ControllerName != ourController {
		t.Fatalf("route parents %+v: want theirs untouched, then ours", parents)
	}
	assertCondition(t, "HTTPRoute parent", parents[1].Conditions, "ResolvedRefs", metav1.ConditionTrue, t0)

	// Nothing changed: nothing is written.
	now = t1.Time
	if err := w.Sync(ctx, written, snap); err != nil {
		t.Fatalf("second sync: %v", err)
	}
	if again := objects(); versions(again) != versions(written) {
		t.Errorf("an unchanged status was written again: resourceVersions %v then %v", versions(written), versions(again))
	}

	// One route condition changes: only it gets the new time. Syncing from
	// the stale objects (resourceVersions before the first write) makes
	// every update conflict first, which must be retried.
	changed := *snap
	changed.GatewayAPI.HTTPRoutes = map[types.NamespacedName][]gatewayv1.RouteParentStatus{web: {*ourParent.DeepCopy()}}
	changed.GatewayAPI.HTTPRoutes[web][0].Conditions[1] = gen(cond("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "Service shop/web not found", metav1.Time{}), route.Generation)
	if err := w.Sync(ctx, stale, &changed); err != nil {
		t.Fatalf("sync after a change, from stale objects: %v", err)
	}
	final := objects()
	parents = final.HTTPRoutes[0].Status.Parents
	if len(parents) != 2 || !equality.Semantic.DeepEqual(parents[0], theirs) {
		t.Fatalf("route parents %+v", parents)
	}
	assertCondition(t, "HTTPRoute parent", parents[1].Conditions, "Accepted", metav1.ConditionTrue, t0)
	assertCondition(t, "HTTPRoute parent", parents[1].Conditions, "ResolvedRefs", metav1.ConditionFalse, t1)
	if final.Gateways[0].ResourceVersion != written.Gateways[0].ResourceVersion {
		t.Error("the Gateway was written though its status did not change")
	}

	// The route leaves our Gateways: our entry goes, theirs stays.
	gone := changed
	gone.GatewayAPI.HTTPRoutes = nil
	if err := w.Sync(ctx, final, &gone); err != nil {
		t.Fatal(err)
	}
	if parents := objects().HTTPRoutes[0].Status.Parents; len(parents) != 1 || !equality.Semantic.DeepEqual(parents[0], theirs) {
		t.Errorf("after the route left: parents %+v, want only theirs", parents)
	}

	// Another controller adds a condition of its own to the Gateway and to
	// its listener; after a spec change our next write brings our
	// conditions to the new generation and leaves theirs as they are.
	seeded := objects().Gateways[0]
	foreign := metav1.Condition{Type: "example.com/Audited", Status: metav1.ConditionTrue, Reason: "Seeded",
		ObservedGeneration: seeded.Generation, LastTransitionTime: t0}
	seeded.Status.Conditions = append(seeded.Status.Conditions, foreign)
	seeded.Status.Listeners[0].Conditions = append(seeded.Status.Listeners[0].Conditions, foreign)
	if seeded, err = gw.GatewayV1().Gateways("shop").UpdateStatus(ctx, seeded, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	seeded.Spec.Listeners[0].Hostname = ptrTo(gatewayv1.Hostname("second.example.com"))
	if seeded, err = gw.GatewayV1().Gateways("shop").Update(ctx, seeded, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	bumped := gone
	wantGateway := snap.GatewayAPI.Gateways[edge]
	bumpedStatus := *wantGateway.DeepCopy()
	for i := range bumpedStatus.Conditions {
		bumpedStatus.Conditions[i].ObservedGeneration = seeded.Generation
	}
	for i := range bumpedStatus.Listeners[0].Conditions {
		bumpedStatus.Listeners[0].Conditions[i].ObservedGeneration = seeded.Generation
	}
	bumped.GatewayAPI.Gateways = map[types.NamespacedName]gatewayv1.GatewayStatus{edge: bumpedStatus}
	if err := w.Sync(ctx, objects(), &bumped); err != nil {
		t.Fatal(err)
	}
	after := objects().Gateways[0]
	for what, conds := range map[string][]metav1.Condition{"Gateway": after.Status.Conditions, "listener": after.Status.Listeners[0].Conditions} {
		var kept *metav1.Condition
		for i, c := range conds {
			switch {
			case c.Type == foreign.Type:
				kept = &conds[i]
			case c.ObservedGeneration != seeded.Generation:
				t.Errorf("%s condition %s: observedGeneration %d, want %d", what, c.Type, c.ObservedGeneration, seeded.Generation)
			}
		}
		if kept == nil || !equality.Semantic.DeepEqual(*kept, foreign) {
			t.Errorf("%s: the other controller's condition is %+v, want %+v kept as it was", what, kept, foreign)
		}
	}

	// A BackendTLSPolicy used by our Gateway, which another controller's
	// Gateway uses too: our ancestor entry is added after theirs, and
	// removed when our routes stop using the policy.
	policy, err := gw.GatewayV1().BackendTLSPolicies("shop").Create(ctx, &gatewayv1.BackendTLSPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "to-api"},
		Spec: gatewayv1.BackendTLSPolicySpec{
			TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{Kind: "Service", Name: "api"}}},
			Validation: gatewayv1.BackendTLSPolicyValidation{
				Hostname:          "api.shop.internal",
				CACertificateRefs: []gatewayv1.LocalObjectReference{{Kind: "ConfigMap", Name: "api-ca"}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	theirAncestor := gatewayv1.PolicyAncestorStatus{
		AncestorRef:    gatewayv1.ParentReference{Group: ptrTo(gatewayv1.Group(gatewayv1.GroupName)), Kind: ptrTo(gatewayv1.Kind("Gateway")), Name: "their-gw"},
		ControllerName: "example.com/other",
		Conditions:     []metav1.Condition{gen(cond("Accepted", metav1.ConditionTrue, "Accepted", "theirs", t0), policy.Generation)},
	}
	policy.Status.Ancestors = []gatewayv1.PolicyAncestorStatus{theirAncestor}
	if policy, err = gw.GatewayV1().BackendTLSPolicies("shop").UpdateStatus(ctx, policy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	theirAncestor = policy.Status.Ancestors[0]
	toAPI := types.NamespacedName{Namespace: "shop", Name: "to-api"}
	withPolicy := gone
	withPolicy.GatewayAPI.BackendTLSPolicies = map[types.NamespacedName]gatewayv1.PolicyStatus{toAPI: {Ancestors: []gatewayv1.PolicyAncestorStatus{{
		AncestorRef:    gatewayv1.ParentReference{Group: ptrTo(gatewayv1.Group(gatewayv1.GroupName)), Kind: ptrTo(gatewayv1.Kind("Gateway")), Namespace: ptrTo(gatewayv1.Namespace("shop")), Name: "edge"},
		ControllerName: ourController,
		Conditions: []metav1.Condition{
			gen(cond("Accepted", metav1.ConditionTrue, "Accepted", "the policy applies", metav1.Time{}), policy.Generation),
			gen(cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "all references are resolved", metav1.Time{}), policy.Generation),
		},
	}}}}
	policyObjects := func() snapshot.Objects {
		p, err := gw.GatewayV1().BackendTLSPolicies("shop").Get(ctx, "to-api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return snapshot.Objects{BackendTLSPolicies: []*gatewayv1.BackendTLSPolicy{p}}
	}
	if err := w.Sync(ctx, policyObjects(), &withPolicy); err != nil {
		t.Fatalf("sync with a BackendTLSPolicy: %v", err)
	}
	ancestors := policyObjects().BackendTLSPolicies[0].Status.Ancestors
	if len(ancestors) != 2 || !equality.Semantic.DeepEqual(ancestors[0], theirAncestor) || ancestors[1].ControllerName != ourController {
		t.Fatalf("policy ancestors %+v: want theirs untouched, then ours", ancestors)
	}
	assertCondition(t, "BackendTLSPolicy ancestor", ancestors[1].Conditions, "ResolvedRefs", metav1.ConditionTrue, metav1.NewTime(now))
	if err := w.Sync(ctx, policyObjects(), &gone); err != nil {
		t.Fatal(err)
	}
	if ancestors := policyObjects().BackendTLSPolicies[0].Status.Ancestors; len(ancestors) != 1 || !equality.Semantic.DeepEqual(ancestors[0], theirAncestor) {
		t.Errorf("after our routes stopped using the policy: ancestors %+v, want only theirs", ancestors)
	}

	// The problem became an Event on the HTTPRoute.
	var events *corev1.EventList
	for range 100 {
		events, err = kube.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events.Items) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(events.Items) != 1 || events.Items[0].InvolvedObject.Kind != "HTTPRoute" || events.Items[0].Reason != "BackendNotFound" {
		t.Errorf("events %+v, want one BackendNotFound on the HTTPRoute", events.Items)
	}
}

func assertCondition(t *testing.T, what string, conds []metav1.Condition, typ string, status metav1.ConditionStatus, at metav1.Time) {
	t.Helper()
	for _, c := range conds {
		if c.Type != typ {
			continue
		}
		if c.Status != status || !c.LastTransitionTime.Equal(&at) {
			t.Errorf("%s condition %s: %s at %s, want %s at %s", what, typ, c.Status, c.LastTransitionTime, status, at)
		}
		return
	}
	t.Errorf("%s has no %s condition: %+v", what, typ, conds)
}

func ptrTo[T any](v T) *T { return &v }

// startGatewayAPICluster starts a control plane with the Gateway API CRDs
// of the standard channel, and returns a context bounding the test's API
// calls with clients for core and Gateway API objects.
func startGatewayAPICluster(t *testing.T) (context.Context, kubernetes.Interface, gatewayclient.Interface) {
	t.Helper()
	cp := controlplane.StartForTest(t, controlplane.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if err := controlplane.InstallGatewayAPICRDs(ctx, cp.RESTConfig(), controlplane.ChannelStandard); err != nil {
		t.Fatal(err)
	}
	return ctx, cp.Client(), gatewayclient.NewForConfigOrDie(cp.RESTConfig())
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestWriteListenerSetStatus writes a ListenerSet's status through a real
// API server: the set's conditions and its listeners' are kept with their
// transition time while unchanged.
func TestWriteListenerSetStatus(t *testing.T) {
	ctx, kube, gw := startGatewayAPICluster(t)
	set, err := gw.GatewayV1().ListenerSets("default").Create(ctx, &gatewayv1.ListenerSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "team"},
		Spec: gatewayv1.ListenerSetSpec{
			ParentRef: gatewayv1.ParentGatewayReference{Name: "edge"},
			Listeners: []gatewayv1.ListenerEntry{{Name: "app", Protocol: gatewayv1.HTTPProtocolType, Port: 8000}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := set.Generation
	want := gatewayv1.ListenerSetStatus{
		Conditions: []metav1.Condition{
			{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: g},
			{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", ObservedGeneration: g},
		},
		Listeners: []gatewayv1.ListenerEntryStatus{{
			Name:           "app",
			AttachedRoutes: 2,
			Conditions:     []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: g}},
		}},
	}
	now := t0.Time
	w := &Writer{Client: kube, Gateway: gw, GatewayController: ourController, Now: func() time.Time { return now }}
	sync := func() *gatewayv1.ListenerSet {
		t.Helper()
		cur, err := gw.GatewayV1().ListenerSets("default").Get(ctx, "team", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snap := &snapshot.Snapshot{GatewayAPI: snapshot.GatewayAPIStatus{
			ListenerSets: map[types.NamespacedName]gatewayv1.ListenerSetStatus{{Namespace: "default", Name: "team"}: want},
		}}
		if err := w.Sync(ctx, snapshot.Objects{ListenerSets: []*gatewayv1.ListenerSet{cur}}, snap); err != nil {
			t.Fatal(err)
		}
		written, err := gw.GatewayV1().ListenerSets("default").Get(ctx, "team", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return written
	}
	first := sync()
	assertCondition(t, "ListenerSet", first.Status.Conditions, "Programmed", metav1.ConditionTrue, t0)
	if ls := first.Status.Listeners; len(ls) != 1 || ls[0].AttachedRoutes != 2 {
		t.Fatalf("listener statuses %+v", ls)
	}
	assertCondition(t, "ListenerSet listener", first.Status.Listeners[0].Conditions, "Accepted", metav1.ConditionTrue, t0)

	now = t1.Time
	want.Conditions[1] = metav1.Condition{Type: "Programmed", Status: metav1.ConditionFalse, Reason: "Pending", ObservedGeneration: g}
	second := sync()
	assertCondition(t, "ListenerSet", second.Status.Conditions, "Accepted", metav1.ConditionTrue, t0)
	assertCondition(t, "ListenerSet", second.Status.Conditions, "Programmed", metav1.ConditionFalse, t1)
	assertCondition(t, "ListenerSet listener", second.Status.Listeners[0].Conditions, "Accepted", metav1.ConditionTrue, t0)
}

// TestSyncGatewayServices keeps a Gateway's Service and EndpointSlice
// through a real API server: created with the infrastructure labels,
// unchanged objects are not written again, a new address and label are
// applied in place, and the Service goes when no Gateway asks for it.
func TestSyncGatewayServices(t *testing.T) {
	ctx, kube, gw := startGatewayAPICluster(t)
	gateway, err := gw.GatewayV1().Gateways("default").Create(ctx, &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "edge"},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: "portico",
			Listeners: []gatewayv1.Listener{{Name: "http", Protocol: gatewayv1.HTTPProtocolType, Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{Client: kube, Gateway: gw, GatewayController: ourController}
	name := types.NamespacedName{Namespace: "default", Name: "portico-edge"}
	want := snapshot.GatewayService{
		Gateway: types.NamespacedName{Namespace: "default", Name: "edge"}, GatewayUID: gateway.UID, Name: name.Name,
		Labels:      map[string]string{"team": "platform", snapshot.LabelManagedBy: snapshot.ManagedBy, gatewayv1.GatewayNameLabelKey: "edge"},
		Annotations: map[string]string{"external-dns.alpha.kubernetes.io/hostname": "edge.example.com"},
		Ports:       []snapshot.GatewayServicePort{{Name: "http-80", Port: 80}},
		Addresses:   []netip.Addr{netip.MustParseAddr("10.250.7.1")},
	}
	objects := func() snapshot.Objects {
		t.Helper()
		svcs, err := kube.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		slices, err := kube.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var o snapshot.Objects
		for i := range svcs.Items {
			o.Services = append(o.Services, &svcs.Items[i])
		}
		for i := range slices.Items {
			o.EndpointSlices = append(o.EndpointSlices, &slices.Items[i])
		}
		return o
	}
	sync := func(services map[types.NamespacedName]snapshot.GatewayService) snapshot.Objects {
		t.Helper()
		if err := w.syncGatewayServices(ctx, objects(), services); err != nil {
			t.Fatal(err)
		}
		return objects()
	}
	find := func(o snapshot.Objects) (*corev1.Service, *discoveryv1.EndpointSlice) {
		var svc *corev1.Service
		var slice *discoveryv1.EndpointSlice
		for _, s := range o.Services {
			if s.Name == name.Name {
				svc = s
			}
		}
		for _, s := range o.EndpointSlices {
			if s.Name == name.Name+"-ipv4" {
				slice = s
			}
		}
		return svc, slice
	}

	first := sync(map[types.NamespacedName]snapshot.GatewayService{name: want})
	svc, slice := find(first)
	if svc == nil || slice == nil {
		t.Fatalf("Service %v, EndpointSlice %v", svc, slice)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Labels["team"] != "platform" || svc.Annotations["external-dns.alpha.kubernetes.io/hostname"] != "edge.example.com" ||
		len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].UID != gateway.UID {
		t.Errorf("Service %+v", svc)
	}
	if len(slice.Endpoints) != 1 || slice.Endpoints[0].Addresses[0] != "10.250.7.1" || slice.Labels[discoveryv1.LabelServiceName] != name.Name ||
		len(slice.OwnerReferences) != 1 || slice.OwnerReferences[0].UID != svc.UID {
		t.Errorf("EndpointSlice %+v", slice)
	}

	again := sync(map[types.NamespacedName]snapshot.GatewayService{name: want})
	svc2, slice2 := find(again)
	if svc2.ResourceVersion != svc.ResourceVersion || slice2.ResourceVersion != slice.ResourceVersion {
		t.Errorf("unchanged objects were written again: Service %s -> %s, EndpointSlice %s -> %s",
			svc.ResourceVersion, svc2.ResourceVersion, slice.ResourceVersion, slice2.ResourceVersion)
	}

	want.Labels = maps.Clone(want.Labels)
	want.Labels["tier"] = "edge"
	want.Addresses = append(want.Addresses, netip.MustParseAddr("10.250.7.2"))
	changed := sync(map[types.NamespacedName]snapshot.GatewayService{name: want})
	svc3, slice3 := find(changed)
	if svc3.UID != svc.UID || svc3.Labels["tier"] != "edge" || len(slice3.Endpoints) != 2 {
		t.Errorf("after a change: Service %+v, EndpointSlice endpoints %+v", svc3.ObjectMeta, slice3.Endpoints)
	}

	// A user's Service without our label is never deleted.
	if _, err := kube.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "theirs", Labels: map[string]string{gatewayv1.GatewayNameLabelKey: "edge"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gone := sync(nil)
	if svc, _ := find(gone); svc != nil {
		t.Errorf("the Service of a Gateway no longer asked for is still there: %+v", svc.ObjectMeta)
	}
	if !slices.ContainsFunc(gone.Services, func(s *corev1.Service) bool { return s.Name == "theirs" }) {
		t.Error("a Service Portico does not manage was deleted")
	}
}
