package manifests

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// fingerprint is what the poller compares to decide whether a file needs
// reading again. It is deliberately cheap: one stat per file per poll.
type fingerprint struct {
	size  int64
	mtime int64 // UnixNano
	// mode is included so that fixing a file's permissions reads it again.
	mode fs.FileMode
	// target is where a symlinked file resolves to. ConfigMap volumes swap
	// a "..data" symlink on update, so the resolved path changes even when
	// size and mtime happen to match.
	target string
}

// foundFile is one manifest file seen by a walk.
type foundFile struct {
	rel  string // path relative to the folder; the sort key
	path string // path as given to Problem and logs
	fp   fingerprint
	json bool
}

// walk lists every manifest file under dir. It fails only when dir itself
// cannot be read; trouble further down (an unreadable subfolder, a dangling
// symlink) becomes a Problem.
func walk(dir string) ([]foundFile, []Problem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	w := walker{visited: map[string]bool{}}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	w.visited[real] = true
	w.entries(dir, "", real, entries)
	slices.SortFunc(w.files, func(a, b foundFile) int { return strings.Compare(a.rel, b.rel) })
	return w.files, w.problems, nil
}

type walker struct {
	files    []foundFile
	problems []Problem
	// visited holds the resolved paths of folders already walked, so a
	// symlink pointing back up the tree cannot loop forever.
	visited map[string]bool
}

func (w *walker) dir(path, rel, real string) {
	if w.visited[real] {
		return
	}
	w.visited[real] = true
	entries, err := os.ReadDir(path)
	if err != nil {
		w.problems = append(w.problems, Problem{File: path, Err: fmt.Errorf("cannot read folder: %w", unwrapPath(err))})
		return
	}
	w.entries(path, rel, real, entries)
}

// entries walks the listing of the folder at path, whose symlink-free
// location is real.
func (w *walker) entries(path, rel, real string, entries []fs.DirEntry) {
	for _, e := range entries {
		name := e.Name()
		// Hidden names are editor swap files, VCS metadata and the
		// "..data"/"..2024_..." folders of ConfigMap volumes, whose files
		// are reached through the top-level symlinks instead.
		if strings.HasPrefix(name, ".") {
			continue
		}
		childPath := filepath.Join(path, name)
		childRel := filepath.Join(rel, name)

		var info fs.FileInfo
		var target string
		var err error
		if e.Type()&fs.ModeSymlink != 0 {
			if info, err = os.Stat(childPath); err != nil {
				if isManifestName(name) {
					w.problems = append(w.problems, Problem{File: childPath, Err: fmt.Errorf("cannot follow symlink: %w", unwrapPath(err))})
				}
				continue
			}
			if target, err = filepath.EvalSymlinks(childPath); err != nil {
				continue // removed between the two calls; the next poll sees it
			}
		} else if e.IsDir() {
			w.dir(childPath, childRel, filepath.Join(real, name))
			continue
		} else if !isManifestName(name) || !e.Type().IsRegular() {
			continue
		} else if info, err = e.Info(); err != nil {
			continue // removed since the folder was listed
		}

		if info.IsDir() {
			w.dir(childPath, childRel, target)
			continue
		}
		if !isManifestName(name) || !info.Mode().IsRegular() {
			continue
		}
		w.files = append(w.files, foundFile{
			rel:  childRel,
			path: childPath,
			fp:   fingerprint{size: info.Size(), mtime: info.ModTime().UnixNano(), mode: info.Mode(), target: target},
			json: strings.EqualFold(filepath.Ext(name), ".json"),
		})
	}
}

func isManifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// unwrapPath drops the *fs.PathError wrapper whose path the Problem already
// names, so messages do not repeat it.
func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
