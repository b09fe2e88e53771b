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

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	Ingresses []checkIngress `json:"ingresses"`
	Summary   checkSummary   `json:"summary"`
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

// checkSummary counts annotations by verdict; an invalid value counts as
// invalid whatever the annotation's verdict.
type checkSummary struct {
	Ingresses     int `json:"ingresses"`
	Annotations   int `json:"annotations"`
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: portico check (--manifests DIR | --kubeconfig FILE) [-o text|json]")
		fmt.Fprintln(stderr, "Prints, per Ingress, every nginx.ingress.kubernetes.io annotation with Portico's verdict, and a summary line.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if (*dir == "") == (*kubeconfig == "") || fs.NArg() > 0 || (*output != "text" && *output != "json") {
		fs.Usage()
		return 2
	}
	var ingresses []*networkingv1.Ingress
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
	} else {
		var err error
		if ingresses, err = clusterIngresses(*kubeconfig); err != nil {
			fmt.Fprintf(stderr, "portico check: %v\n", err)
			return 1
		}
	}
	report := buildCheckReport(ingresses)
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

func clusterIngresses(kubeconfig string) ([]*networkingv1.Ingress, error) {
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.NetworkingV1().Ingresses(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Ingresses: %w", err)
	}
	out := make([]*networkingv1.Ingress, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
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
		report.Ingresses = append(report.Ingresses, ci)
	}
	return report
}

func writeCheckText(w io.Writer, report checkReport) {
	for _, ing := range report.Ingresses {
		fmt.Fprintf(w, "Ingress %s/%s\n", ing.Namespace, ing.Name)
		if len(ing.Annotations) == 0 {
			fmt.Fprintln(w, "  no ingress-nginx annotations")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range ing.Annotations {
			verdict := a.Verdict
			detail := a.Note
			if a.Invalid != "" {
				verdict, detail = "invalid", a.Invalid
			}
			if detail != "" {
				detail = ": " + detail
			}
			fmt.Fprintf(tw, "  %s\t%s%s\n", a.Annotation, verdict, detail)
		}
		_ = tw.Flush()
	}
	s := report.Summary
	fmt.Fprintf(w, "summary: %d Ingresses, %d ingress-nginx annotations: %d exact, %d approximate, %d unsupported, %d never executed (snippets), %d unknown, %d invalid\n",
		s.Ingresses, s.Annotations, s.Exact, s.Approximate, s.Unsupported, s.NeverExecuted, s.Unknown, s.Invalid)
}
