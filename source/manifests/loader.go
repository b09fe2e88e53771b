package manifests

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"portico.dev/portico/snapshot"
)

// maxFileSize bounds how much of one file is read. Manifests are small; a
// multi-megabyte file in the folder is a mistake (a log, a dump) that must not
// be pulled into memory on every edit.
const maxFileSize = 8 << 20

// racyWindow is how long after its last modification a file's fingerprint
// is not trusted. A file rewritten twice within the file system's timestamp
// granularity, with the same size, would otherwise look unchanged.
const racyWindow = 2 * time.Second

// fileState is what the loader remembers about one file between polls.
type fileState struct {
	found foundFile
	// trusted is false while the file's mtime is too recent to rely on, so
	// the next poll reads it again whatever its fingerprint says.
	trusted bool
	// sum is the hash of the content last read; a read that yields the same
	// content (a touch, an editor saving without changes) is a no-op.
	sum    [sha256.Size]byte
	hasSum bool

	// entries are the objects this file currently contributes. After a
	// broken edit they are still those of the last version that decoded.
	entries  []entry
	problems []Problem
	notes    []note
	// clean says entries came from a read in which every document decoded.
	// Only a clean version is worth keeping over a later broken one.
	clean bool
}

// loader turns a folder into objects, remembering per-file results so a
// poll re-reads only what changed.
type loader struct {
	dir   string
	files map[string]*fileState // by foundFile.rel
	order []string              // rel paths, sorted
	// walkProblems are the latest walk's findings about folders and links.
	walkProblems []Problem
}

func newLoader(dir string) *loader {
	return &loader{dir: dir, files: map[string]*fileState{}}
}

// scanResult says what one scan changed.
type scanResult struct {
	// reread lists files whose content changed and was decoded again, in
	// order; their problems and notes are new.
	reread []*fileState
	// removed lists files that disappeared.
	removed []string
	// dirty is set when the set of objects may have changed.
	dirty bool
}

// scan walks the folder and brings the per-file state up to date. It fails
// only when the folder itself cannot be read, leaving the state untouched.
func (l *loader) scan(now time.Time) (scanResult, error) {
	found, walkProblems, err := walk(l.dir)
	if err != nil {
		return scanResult{}, err
	}
	l.walkProblems = walkProblems

	var res scanResult
	seen := make(map[string]bool, len(found))
	order := make([]string, 0, len(found))
	for _, f := range found {
		seen[f.rel] = true
		order = append(order, f.rel)
		st, known := l.files[f.rel]
		if !known {
			st = &fileState{}
			l.files[f.rel] = st
			res.dirty = true
		}
		if known && st.trusted && st.found.fp == f.fp {
			continue
		}
		st.found = f
		st.trusted = now.IsZero() || now.Sub(time.Unix(0, f.fp.mtime)) >= racyWindow
		if l.read(st) {
			res.reread = append(res.reread, st)
			res.dirty = true
		}
	}
	for rel, st := range l.files {
		if !seen[rel] {
			delete(l.files, rel)
			res.removed = append(res.removed, st.found.path)
			res.dirty = true
		}
	}
	slices.Sort(res.removed)
	l.order = order
	return res, nil
}

// read reads and decodes one file, applying the last-good rule. It reports
// whether anything about the file changed.
func (l *loader) read(st *fileState) bool {
	data, err := readFile(st.found.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed or renamed since the walk, as editors do when saving;
		// the next scan sees where it went.
		st.trusted = false
		return false
	}
	if err != nil {
		// Keep whatever the file contributed before: an unreadable file
		// (permissions being fixed, a network mount hiccup) is not a
		// deleted one. Forget the hash so the next change reads again.
		st.hasSum = false
		st.problems = []Problem{{File: st.found.path, Err: lastGoodNote(err, st.entries)}}
		st.notes = nil
		return true
	}
	sum := sha256.Sum256(data)
	if st.hasSum && sum == st.sum {
		return false
	}
	st.sum, st.hasSum = sum, true

	d := decodeFile(st.found.path, data, st.found.json)
	st.problems, st.notes = d.problems, d.notes
	if d.broken && st.clean && len(st.entries) > 0 {
		// A half-saved edit or a typo: serving the previous version of the
		// file beats dropping its routes until the editor is fixed.
		st.problems = append(st.problems, Problem{
			File: st.found.path,
			Err:  fmt.Errorf("keeping the %d object(s) of the last version that loaded until the file is fixed", len(st.entries)),
		})
		return true
	}
	st.entries, st.clean = d.entries, !d.broken
	return true
}

func lastGoodNote(err error, kept []entry) error {
	err = unwrapPath(err)
	if len(kept) == 0 {
		return fmt.Errorf("cannot read file: %w", err)
	}
	return fmt.Errorf("cannot read file, keeping the %d object(s) it had: %w", len(kept), err)
}

var errTooLarge = errors.New("file is larger than 8 MiB; not a manifest")

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, errTooLarge
	}
	return data, nil
}

// assemble merges every file's objects, in file then document order, into
// the builder's input. The first definition of an object wins; later ones
// are returned as problems naming both places.
func (l *loader) assemble() (snapshot.Objects, []Problem) {
	type origin struct {
		file string
		doc  int
	}
	var (
		objs     snapshot.Objects
		problems []Problem
		defined  = map[objectKey]origin{}
	)
	for _, rel := range l.order {
		st := l.files[rel]
		for _, e := range st.entries {
			if first, dup := defined[e.key]; dup {
				where := fmt.Sprintf("%s (document %d)", first.file, first.doc)
				if first.file == st.found.path {
					where = fmt.Sprintf("document %d of this file", first.doc)
				}
				problems = append(problems, Problem{
					File:   st.found.path,
					Doc:    e.doc,
					Object: e.key.String(),
					Err:    fmt.Errorf("duplicate: already defined in %s, which wins; this copy is ignored", where),
				})
				continue
			}
			defined[e.key] = origin{file: st.found.path, doc: e.doc}
			objs.Add(e.obj)
		}
	}
	return objs, problems
}

// allProblems lists every current problem, sorted by file then document.
func (l *loader) allProblems(duplicates []Problem) []Problem {
	out := slices.Clone(l.walkProblems)
	for _, rel := range l.order {
		out = append(out, l.files[rel].problems...)
	}
	out = append(out, duplicates...)
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Doc, b.Doc))
	})
	return out
}
