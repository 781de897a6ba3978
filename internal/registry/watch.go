package registry

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads the registry whenever the plugin directory changes, until
// ctx ends. Changes are gathered for a moment first: copying a binary in is
// several events, and a half-written file would only be refused.
func (r *Registry) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(r.cfg.Dir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", r.cfg.Dir, err)
	}
	go func() {
		defer w.Close()
		var settle <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				r.log.Debug("plugin directory changed", "event", ev.String())
				settle = time.After(500 * time.Millisecond)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				r.log.Warn("watching the plugin directory", "error", err)
			case <-settle:
				settle = nil
				if err := r.Reload(ctx); err != nil {
					r.log.Error("reload plugins", "error", err)
				}
			}
		}
	}()
	return nil
}

// LoadChecksums reads a sha256sum-format file ("<hex>  <file>" per line)
// into file name → checksum.
func LoadChecksums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimSpace(name), "*") // sha256sum's binary marker
		if raw, err := hex.DecodeString(sum); !ok || err != nil || len(raw) != 32 || name == "" {
			return nil, fmt.Errorf("%s:%d: want \"<sha256>  <file>\" as sha256sum writes it", path, n)
		}
		out[filepath.Base(name)] = strings.ToLower(sum)
	}
	return out, sc.Err()
}
