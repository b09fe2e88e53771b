package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"portico.dev/portico/snapshot"
)

// apiGroups are the API groups whose kinds the decoder recognises. Serving a
// new group is one more entry here plus its kinds in snapshot.Kinds; kinds
// of groups missing here are reported as not served.
var apiGroups = []func(*runtime.Scheme) error{
	clientgoscheme.AddToScheme,
	gatewayv1.Install,
}

// deserializer decodes YAML or JSON into the typed Kubernetes API structs.
// It is strict so that a misspelt field ("sevice:") is reported instead of
// silently producing an Ingress without a backend.
var deserializer = newDeserializer()

func newDeserializer() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range apiGroups {
		if err := add(s); err != nil {
			// The scheme is built from compiled-in registrations; failing
			// here is a programming error that no input can cause.
			panic(fmt.Sprintf("manifests: building the API scheme: %v", err))
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}

// objectKey identifies an object the way the API server does: two manifests
// with the same key describe the same object.
type objectKey = snapshot.ObjectRef

// entry is one object kept from a file.
type entry struct {
	doc int
	key objectKey
	obj runtime.Object
}

// note is something worth telling the operator that is not a mistake, such
// as a kind Portico does not serve.
type note struct {
	level  slog.Level
	doc    int
	object string
	msg    string
}

// decoded is everything one read of one file produced.
type decoded struct {
	entries  []entry
	problems []Problem
	notes    []note
	// broken is set when some document could not be turned into an object,
	// which is what a half-saved edit looks like; see fileState.clean.
	broken bool
}

// document is one YAML document of a file.
type document struct {
	index int // 1-based position in the file
	line  int // 1-based line of the file where the document starts
	data  []byte
}

var utf8BOM = []byte("\xef\xbb\xbf")

// splitDocuments splits a YAML stream on "---" lines. It is written here
// rather than borrowed so each document knows its starting line, which makes
// error messages point at the right place in long files.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, utf8BOM)
	var docs []document
	start, startLine, line := 0, 1, 1
	flush := func(end int) {
		docs = append(docs, document{line: startLine, data: data[start:end]})
	}
	for pos := 0; pos < len(data); line++ {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		if isSeparator(data[pos:next]) {
			flush(pos)
			// Anything after "---" on the same line (a comment, usually)
			// belongs to the next document.
			start, startLine = pos+3, line
		}
		pos = next
	}
	flush(len(data))

	// A file that opens with "---" has nothing before it; numbering that
	// empty prefix as document 1 would confuse everyone counting documents.
	if len(docs) > 1 && isBlank(docs[0].data) {
		docs = docs[1:]
	}
	for i := range docs {
		docs[i].index = i + 1
	}
	return docs
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := line[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// isBlank reports whether a document holds only whitespace and comments.
func isBlank(data []byte) bool {
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// decodeFile turns the content of one manifest file into objects. JSON files
// hold exactly one document; YAML files any number.
func decodeFile(file string, data []byte, isJSON bool) decoded {
	var d decoded
	if isJSON {
		d.decodeDocument(file, document{index: 1, line: 1, data: bytes.TrimPrefix(data, utf8BOM)})
		return d
	}
	for _, doc := range splitDocuments(data) {
		d.decodeDocument(file, doc)
	}
	return d
}

// header is the part of any manifest needed to name it in messages and to
// expand a List, read without knowing the kind.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func (h header) object() string {
	if h.Kind == "" || h.Metadata.Name == "" {
		return h.Kind
	}
	return objectKey{Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name}.String()
}

func (d *decoded) decodeDocument(file string, doc document) {
	if isBlank(doc.data) {
		return
	}
	js, err := yaml.YAMLToJSON(doc.data)
	if err != nil {
		d.fail(file, doc.index, "", yamlError(err, doc.line))
		return
	}
	js = bytes.TrimSpace(js)
	if bytes.Equal(js, []byte("null")) {
		return
	}
	if len(js) == 0 || js[0] != '{' {
		d.fail(file, doc.index, "", errors.New("not a Kubernetes object (expected a mapping with apiVersion and kind)"))
		return
	}
	// Type mismatches in the header are reported by the full decode below,
	// with better wording; here a best-effort read is all that is needed.
	var h header
	_ = json.Unmarshal(js, &h)

	if h.Kind == "List" {
		for i, item := range h.Items {
			var ih header
			_ = json.Unmarshal(item, &ih)
			d.decodeObject(file, doc.index, ih, item, fmt.Sprintf("List item %d: ", i+1))
		}
		return
	}
	d.decodeObject(file, doc.index, h, js, "")
}

func (d *decoded) decodeObject(file string, doc int, h header, js []byte, prefix string) {
	obj, gvk, err := deserializer.Decode(js, nil, nil)
	var strictErr error
	switch {
	case err == nil:
	case runtime.IsStrictDecodingError(err) && obj != nil:
		// The object is usable; the unknown or duplicated fields are most
		// likely typos the operator wants to hear about.
		strictErr = err
	case runtime.IsNotRegisteredError(err):
		d.notServed(doc, h.object(), schema.FromAPIVersionAndKind(h.APIVersion, h.Kind))
		return
	case runtime.IsMissingKind(err), runtime.IsMissingVersion(err):
		d.fail(file, doc, h.object(), fmt.Errorf("%sapiVersion and kind are required", prefix))
		return
	default:
		d.fail(file, doc, h.object(), fmt.Errorf("%s%w", prefix, err))
		return
	}
	if gvk == nil {
		gvk = &schema.GroupVersionKind{}
	}
	d.keep(file, doc, obj, *gvk, prefix, strictErr)
}

// keep files one decoded object under its kind, applying the defaults the
// API server would apply on create. A non-nil strictErr is reported against
// the object once it is named.
func (d *decoded) keep(file string, doc int, obj runtime.Object, gvk schema.GroupVersionKind, prefix string, strictErr error) {
	k := snapshot.KindOf(obj)
	if k == nil {
		if meta.IsListType(obj) {
			d.expandTypedList(file, doc, obj, gvk, prefix)
			return
		}
		var object string
		if m, err := meta.Accessor(obj); err == nil && m.GetName() != "" {
			object = objectKey{Kind: gvk.Kind, Namespace: m.GetNamespace(), Name: m.GetName()}.String()
		}
		d.notServed(doc, object, gvk)
		return
	}
	k.Default(obj)
	// TLS Secrets hold certificates, Opaque ones the users of ingress-nginx
	// basic authentication; no other type is read.
	if s, ok := obj.(*corev1.Secret); ok && s.Type != corev1.SecretTypeTLS && secretType(s) != corev1.SecretTypeOpaque {
		d.notes = append(d.notes, note{
			level:  slog.LevelDebug,
			doc:    doc,
			object: objectKey{Kind: k.Name, Namespace: namespaceOrDefault(s.Namespace), Name: s.Name}.String(),
			msg:    fmt.Sprintf("skipping Secret of type %q: only %s and %s Secrets are read", secretType(s), corev1.SecretTypeTLS, corev1.SecretTypeOpaque),
		})
		return
	}
	kind, namespaced := k.Name, k.Namespaced

	m, err := meta.Accessor(obj)
	if err != nil {
		d.fail(file, doc, kind, fmt.Errorf("%s%w", prefix, err))
		return
	}
	if namespaced {
		m.SetNamespace(namespaceOrDefault(m.GetNamespace()))
	} else {
		m.SetNamespace("")
	}
	key := objectKey{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()}
	if m.GetName() == "" {
		d.fail(file, doc, kind, fmt.Errorf("%smetadata.name is required", prefix))
		return
	}
	if strictErr != nil {
		d.problem(file, doc, key.String(), fmt.Errorf("%s%w", prefix, strictErr))
	}
	d.entries = append(d.entries, entry{doc: doc, key: key, obj: obj})
}

// expandTypedList handles lists such as an IngressList, whose items carry no
// apiVersion or kind of their own.
func (d *decoded) expandTypedList(file string, doc int, list runtime.Object, listGVK schema.GroupVersionKind, prefix string) {
	items, err := meta.ExtractList(list)
	if err != nil {
		d.fail(file, doc, "", fmt.Errorf("%s%w", prefix, err))
		return
	}
	itemGVK := listGVK.GroupVersion().WithKind(strings.TrimSuffix(listGVK.Kind, "List"))
	for i, item := range items {
		d.keep(file, doc, item, itemGVK, fmt.Sprintf("%sList item %d: ", prefix, i+1), nil)
	}
}

func (d *decoded) notServed(doc int, object string, gvk schema.GroupVersionKind) {
	kind := gvk.Kind
	if kind == "" {
		kind = "(unknown)"
	}
	if v := gvk.GroupVersion().String(); v != "" {
		kind = v + " " + kind
	}
	d.notes = append(d.notes, note{
		level:  slog.LevelInfo,
		doc:    doc,
		object: object,
		msg:    fmt.Sprintf("kind %s is not served by Portico; skipping it", kind),
	})
}

// problem records a finding about an object that is kept anyway.
func (d *decoded) problem(file string, doc int, object string, err error) {
	d.problems = append(d.problems, Problem{File: file, Doc: doc, Object: object, Err: err})
}

// fail records a document that produced no object.
func (d *decoded) fail(file string, doc int, object string, err error) {
	d.problem(file, doc, object, err)
	d.broken = true
}

func namespaceOrDefault(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}

func secretType(s *corev1.Secret) corev1.SecretType {
	if s.Type == "" {
		return corev1.SecretTypeOpaque
	}
	return s.Type
}

var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// yamlError rewrites a YAML parser error so its line number counts from the
// top of the file rather than from the top of the document.
func yamlError(err error, docLine int) error {
	msg := err.Error()
	const prefix = "error converting YAML to JSON: "
	msg = strings.TrimPrefix(msg, prefix)
	if docLine > 1 {
		if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
			if n, convErr := strconv.Atoi(msg[m[2]:m[3]]); convErr == nil {
				msg = msg[:m[2]] + strconv.Itoa(n+docLine-1) + msg[m[3]:]
			}
		}
	}
	return errors.New("invalid YAML: " + msg)
}
