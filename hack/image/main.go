// Command imagebuild builds Portico's multi-arch OCI image from static
// binaries, without a container engine (make image), and pushes it to a
// registry (make image-push).
//
// The image has three layers: the binary, the CA bundle of the build
// machine (for ACME directories and BackendTLSPolicy's System trust) and an
// /etc/passwd naming the non-root user it runs as. Outputs, under -out:
//
//	oci/                    an OCI image layout holding the image index
//	portico-<arch>.tar      one docker load-able tarball per architecture
//
// Usage:
//
//	imagebuild -binaries bin/image -out bin/image -version v0.4.0 -commit abc...
//	imagebuild -out bin/image -push registry.example.com/portico:v0.4.0
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the image runs as: the conventional "nonroot" of distroless
// images, so runAsNonRoot policies and the chart's securityContext agree.
const (
	uid      = 65532
	userName = "portico"
	binPath  = "/usr/local/bin/portico"
	caPath   = "/etc/ssl/certs/ca-certificates.crt"
	// refNameAnnotation names the index inside the OCI layout.
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

// Architectures the image is built for; the binaries are portico-linux-<arch>.
var architectures = []string{"amd64", "arm64"}

// Ports the binary listens on with the chart's arguments: HTTP, HTTPS and
// the admin listener (metrics, probes).
var exposedPorts = []string{"8080/tcp", "8443/tcp", "9090/tcp"}

type options struct {
	binaries, out, caBundle string
	version, commit, source string
	license, repository     string
	created                 time.Time
}

func main() {
	var o options
	var push, created string
	flag.StringVar(&o.binaries, "binaries", "bin/image", "folder holding portico-linux-<arch> for each architecture")
	flag.StringVar(&o.out, "out", "bin/image", "folder the OCI layout (oci/) and the docker tarballs are written to")
	flag.StringVar(&o.caBundle, "ca-bundle", caPath, "CA bundle copied into the image")
	flag.StringVar(&o.version, "version", "dev", "version, for the image's label and tag")
	flag.StringVar(&o.commit, "commit", "", "git commit, for the image's revision label")
	flag.StringVar(&o.source, "source", "https://portico.dev/portico", "source repository, for the image's label")
	// The repository has no licence file yet: say so rather than guess.
	flag.StringVar(&o.license, "license", "NOASSERTION", "SPDX licence expression, for the image's label")
	flag.StringVar(&o.repository, "repository", "portico", "repository name the docker tarballs are tagged with")
	flag.StringVar(&created, "created", "", "image creation time (RFC 3339), e.g. the commit's; default: the Unix epoch, so builds are reproducible")
	flag.StringVar(&push, "push", "", "instead of building, push the index in -out/oci to this reference (REGISTRY/portico:TAG), with the credentials of ~/.docker/config.json")
	flag.Parse()
	log.SetFlags(0)

	if push != "" {
		if err := pushIndex(filepath.Join(o.out, "oci"), push); err != nil {
			log.Fatalf("imagebuild: push: %v", err)
		}
		return
	}
	o.created = time.Unix(0, 0).UTC()
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			log.Fatalf("imagebuild: -created: %v", err)
		}
		o.created = t.UTC()
	}
	if err := build(o); err != nil {
		log.Fatalf("imagebuild: %v", err)
	}
}

func build(o options) error {
	ca, err := os.ReadFile(o.caBundle)
	if err != nil {
		return fmt.Errorf("CA bundle: %w (install ca-certificates)", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := make(map[string]v1.Image)
	for _, arch := range architectures {
		bin, err := os.ReadFile(filepath.Join(o.binaries, "portico-linux-"+arch))
		if err != nil {
			return err
		}
		img, err := archImage(o, arch, bin, ca)
		if err != nil {
			return fmt.Errorf("%s: %w", arch, err)
		}
		images[arch] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "linux", Architecture: arch},
			},
		})
	}

	dir := filepath.Join(o.out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: o.version})); err != nil {
		return err
	}
	fmt.Printf("%s: OCI image layout, index %s\n", dir, mustDigest(idx))

	// A docker tarball holds one platform per tag, so one per architecture.
	tag, err := name.NewTag(o.repository + ":" + o.version)
	if err != nil {
		return err
	}
	for _, arch := range architectures {
		f := filepath.Join(o.out, "portico-"+arch+".tar")
		if err := tarball.WriteToFile(f, tag, images[arch]); err != nil {
			return err
		}
		size, err := compressedSize(images[arch])
		if err != nil {
			return err
		}
		fmt.Printf("%s: docker load -i %s (%s, layers %.1f MiB compressed)\n", arch, f, tag, float64(size)/(1<<20))
	}
	return nil
}

// archImage is the image for one architecture.
func archImage(o options, arch string, bin, ca []byte) (v1.Image, error) {
	layers := []struct {
		what  string
		files []file
	}{
		{"binary", []file{dir("usr/"), dir("usr/local/"), dir("usr/local/bin/"), {strings.TrimPrefix(binPath, "/"), 0o755, bin}}},
		{"CA bundle", []file{dir("etc/"), dir("etc/ssl/"), dir("etc/ssl/certs/"), {strings.TrimPrefix(caPath, "/"), 0o644, ca}}},
		{"user", []file{
			dir("etc/"),
			{"etc/passwd", 0o644, []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/nonexistent:/sbin/nologin\n", userName, uid, uid, userName))},
			{"etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid))},
			// A writable /tmp for whoever mounts an emptyDir elsewhere; the
			// root filesystem itself is meant to be read-only.
			{"tmp/", 0o1777, nil},
		}},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		raw, err := tarOf(l.files, o.created)
		if err != nil {
			return nil, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(raw)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			History:   v1.History{CreatedBy: "imagebuild: " + l.what, Created: v1.Time{Time: o.created}},
			MediaType: types.OCILayer,
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.created}
	cf.Author = "Portico"
	ports := make(map[string]struct{})
	for _, p := range exposedPorts {
		ports[p] = struct{}{}
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "portico",
		"org.opencontainers.image.description": "Kubernetes ingress gateway: TLS, host and path routing, legacy fallback",
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.revision":    o.commit,
		"org.opencontainers.image.licenses":    o.license,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
	}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint:   []string{binPath},
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		ExposedPorts: ports,
		Labels:       labels,
	}
	return mutate.ConfigFile(img, cf)
}

type file struct {
	name string
	mode int64
	data []byte
}

func dir(name string) file { return file{name, 0o755, nil} }

// tarOf writes the files as a tar owned by root with a fixed time, so the
// same inputs give the same layer digest.
func tarOf(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Format: tar.FormatPAX}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func compressedSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func mustDigest(idx v1.ImageIndex) v1.Hash {
	h, err := idx.Digest()
	if err != nil {
		log.Fatal(err)
	}
	return h
}

// pushIndex pushes the layout's image index (both architectures) to ref.
func pushIndex(dir, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	idx, err := readIndex(dir)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", r, mustDigest(idx))
	return nil
}

// readIndex opens the image index make image wrote into the OCI layout.
func readIndex(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%w (run make image first)", err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s: %d entries in index.json, want the one image index", dir, len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}
