package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"portico.dev/portico/snapshot"
	"portico.dev/portico/source/manifests"
)

// portico check reads Ingresses (a manifest folder, or a cluster) and
// prints what Portico does with each ingress-nginx annotation on them, so
// that a team knows what will change before it switches. It reads every
// Ingress whatever its class: before the switch they name ingress-nginx's.

// checkReport is the -o json form of portico check.
type checkReport struct {
	// ConfigMap is ingress-nginx's ConfigMap, when --nginx-configmap
	// names one.
	ConfigMap *checkConfigMap `json:"configMap,omitempty"`
	Ingresses []checkIngress  `json:"ingresses"`
	Summary   checkSummary    `json:"summary"`
}

// checkConfigMap is the verdict on every key of ingress-nginx's ConfigMap.
type checkConfigMap struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Found is false when no such ConfigMap exists: then ingress-nginx's
	// defaults apply.
	Found   bool            `json:"found"`
	Keys    []checkKey      `json:"keys"`
	Summary checkKeySummary `json:"summary"`
}

type checkKey struct {
	Key     string `json:"key"`
	Verdict string `json:"verdict"`
	Note    string `json:"note,omitempty"`
	Invalid string `json:"invalid,omitempty"`
}

type checkIngress struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	Annotations []checkAnnotation `json:"annotations"`
}

type checkAnnotation struct {
	Annotation string `json:"annotation"`
	Verdict    string `json:"verdict"`
	Note       string `json:"note,omitempty"`
	Invalid    string `json:"invalid,omitempty"`
}

// checkSummary counts annotations by verdict.
type checkSummary struct {
	Ingresses   int `json:"ingresses"`
	Annotations int `json:"annotations"`
	checkCounts
}

// checkKeySummary counts a ConfigMap's keys by verdict.
type checkKeySummary struct {
	Keys int `json:"keys"`
	checkCounts
}

// checkCounts counts findings by verdict; an invalid value counts as
// invalid whatever the verdict.
type checkCounts struct {
	Exact         int `json:"exact"`
	Approximate   int `json:"approximate"`
	Unsupported   int `json:"unsupported"`
	NeverExecuted int `json:"neverExecuted"`
	Unknown       int `json:"unknown"`
	Invalid       int `json:"invalid"`
}

// runCheck is the check subcommand; it returns the process exit code.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("portico check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("manifests", "", "read the Ingresses in this folder of Kubernetes manifests (YAML or JSON)")
	kubeconfig := fs.String("kubeconfig", "", "read the Ingresses of the cluster this kubeconfig names, in every namespace")
	output := fs.String("o", "text", `output format: "text" or "json"`)
	cmFlag := fs.String("nginx-configmap", "", "NAMESPACE/NAME of ingress-nginx's controller ConfigMap, whose every key is listed with Portico's verdict")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: portico check (--manifests DIR | --kubeconfig FILE) [--nginx-configmap NAMESPACE/NAME] [-o text|json]")
		fmt.Fprintln(stderr, "Prints, per Ingress, every nginx.ingress.kubernetes.io annotation with Portico's verdict, and a summary line;")
		fmt.Fprintln(stderr, "with --nginx-configmap, every key of ingress-nginx's ConfigMap first.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cmName, cmErr := parseNamespacedName(*cmFlag)
	if (*dir == "") == (*kubeconfig == "") || fs.NArg() > 0 || (*output != "text" && *output != "json") || cmErr != nil {
		if cmErr != nil {
			fmt.Fprintf(stderr, "portico check: --nginx-configmap: %v\n", cmErr)
		}
		fs.Usage()
		return 2
	}
	var ingresses []*networkingv1.Ingress
	var cm *corev1.ConfigMap
	if *dir != "" {
		objs, problems, err := manifests.Load(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "portico check: %v\n", err)
			return 1
		}
		for _, p := range problems {
			fmt.Fprintf(stderr, "portico check: skipped: %s: %v\n", p.File, p.Err)
		}
		ingresses = objs.Ingresses
		for _, c := range objs.ConfigMaps {
			if c.Namespace == cmName.Namespace && c.Name == cmName.Name {
				cm = c
			}
		}
	} else {
		var err error
		if ingresses, cm, err = clusterObjects(*kubeconfig, cmName); err != nil {
			fmt.Fprintf(stderr, "portico check: %v\n", err)
			return 1
		}
	}
	report := buildCheckReport(ingresses)
	if cmName.Name != "" {
		report.ConfigMap = buildCheckConfigMap(cmName, cm)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			fmt.Fprintf(stderr, "portico check: %v\n", err)
			return 1
		}
		return 0
	}
	writeCheckText(stdout, report)
	return 0
}

// clusterObjects reads every Ingress of the cluster, and the ConfigMap cm
// names unless it is zero (nil when it does not exist).
func clusterObjects(kubeconfig string, cm types.NamespacedName) ([]*networkingv1.Ingress, *corev1.ConfigMap, error) {
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.NetworkingV1().Ingresses(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing Ingresses: %w", err)
	}
	out := make([]*networkingv1.Ingress, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	if cm.Name == "" {
		return out, nil, nil
	}
	got, err := client.CoreV1().ConfigMaps(cm.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return out, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading ConfigMap %s: %w", cm, err)
	}
	return out, got, nil
}

// buildCheckConfigMap lists every key of ingress-nginx's ConfigMap cm
// (nil when it does not exist) with Portico's verdict.
func buildCheckConfigMap(name types.NamespacedName, cm *corev1.ConfigMap) *checkConfigMap {
	out := &checkConfigMap{Namespace: name.Namespace, Name: name.Name, Found: cm != nil, Keys: []checkKey{}}
	for _, f := range snapshot.NginxGlobalFindings(cm) {
		out.Keys = append(out.Keys, checkKey{Key: f.Annotation, Verdict: string(f.Verdict), Note: f.Note, Invalid: f.Invalid})
		out.Summary.Keys++
		out.Summary.count(f)
	}
	return out
}

// count adds one finding to the verdict counts.
func (s *checkCounts) count(f snapshot.NginxFinding) {
	switch {
	case f.Invalid != "":
		s.Invalid++
	case f.Verdict == snapshot.NginxExact:
		s.Exact++
	case f.Verdict == snapshot.NginxApproximate:
		s.Approximate++
	case f.Verdict == snapshot.NginxUnsupported:
		s.Unsupported++
	case f.Verdict == snapshot.NginxNeverExecuted:
		s.NeverExecuted++
	default:
		s.Unknown++
	}
}

func buildCheckReport(ingresses []*networkingv1.Ingress) checkReport {
	ingresses = slices.Clone(ingresses)
	slices.SortFunc(ingresses, func(a, b *networkingv1.Ingress) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	report := checkReport{Ingresses: []checkIngress{}}
	s := &report.Summary
	for _, ing := range ingresses {
		s.Ingresses++
		ci := checkIngress{Namespace: ing.Namespace, Name: ing.Name, Annotations: []checkAnnotation{}}
		for _, f := range snapshot.NginxFindings(ing) {
			ci.Annotations = append(ci.Annotations, checkAnnotation{Annotation: f.Annotation, Verdict: string(f.Verdict), Note: f.Note, Invalid: f.Invalid})
			s.Annotations++
			s.count(f)
		}
		report.Ingresses = append(report.Ingresses, ci)
	}
	return report
}

func writeCheckText(w io.Writer, report checkReport) {
	if cm := report.ConfigMap; cm != nil {
		fmt.Fprintf(w, "ConfigMap %s/%s\n", cm.Namespace, cm.Name)
		switch {
		case !cm.Found:
			fmt.Fprintln(w, "  not found: ingress-nginx's defaults apply (proxy-body-size 1m, HSTS on)")
		case len(cm.Keys) == 0:
			fmt.Fprintln(w, "  no keys")
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, k := range cm.Keys {
			writeVerdict(tw, k.Key, k.Verdict, k.Note, k.Invalid)
		}
		_ = tw.Flush()
		s := cm.Summary
		fmt.Fprintf(w, "configmap: %d keys: %d exact, %d approximate, %d unsupported, %d never executed (snippets), %d unknown, %d invalid\n",
			s.Keys, s.Exact, s.Approximate, s.Unsupported, s.NeverExecuted, s.Unknown, s.Invalid)
	}
	for _, ing := range report.Ingresses {
		fmt.Fprintf(w, "Ingress %s/%s\n", ing.Namespace, ing.Name)
		if len(ing.Annotations) == 0 {
			fmt.Fprintln(w, "  no ingress-nginx annotations")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range ing.Annotations {
			writeVerdict(tw, a.Annotation, a.Verdict, a.Note, a.Invalid)
		}
		_ = tw.Flush()
	}
	s := report.Summary
	fmt.Fprintf(w, "summary: %d Ingresses, %d ingress-nginx annotations: %d exact, %d approximate, %d unsupported, %d never executed (snippets), %d unknown, %d invalid\n",
		s.Ingresses, s.Annotations, s.Exact, s.Approximate, s.Unsupported, s.NeverExecuted, s.Unknown, s.Invalid)
}

// writeVerdict writes one annotation's or key's line.
func writeVerdict(w io.Writer, name, verdict, note, invalid string) {
	detail := note
	if invalid != "" {
		verdict, detail = "invalid", invalid
	}
	if detail != "" {
		detail = ": " + detail
	}
	fmt.Fprintf(w, "  %s\t%s%s\n", name, verdict, detail)
}
