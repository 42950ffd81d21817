package token

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadRingFile reads and parses the ring file at path (see ParseRing).
func ReadRingFile(path string) (*Ring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRingFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("token: reading %s: %w", path, err)
	}
	r, err := ParseRing(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return r, nil
}

// WriteRingFile writes r to path atomically: to a temporary file in the
// same directory, created with mode 0600, synced, then renamed over path,
// so that a reader sees the old ring or the new one, never a part. With
// exclusive it fails, writing nothing, if path exists.
func WriteRingFile(path string, r *Ring, exclusive bool) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("token: %s already exists", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("token: %w", err)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("token: writing %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if exclusive {
		// Link fails if path appeared meanwhile; rename would replace it.
		if err := os.Link(name, path); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		os.Remove(name)
	} else if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync() //nolint:errcheck // best effort: the rename is durable on most file systems anyway
		d.Close()
	}
	return nil
}
