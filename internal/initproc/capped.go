package initproc

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fullMargin is how little free space counts as full: a write that needs
// more than what is left fails with ENOSPC and leaves about this much.
const fullMargin = 1 << 20

// fullEvery is how often a capped directory's free space is sampled. A
// program that fills it and cleans up between two samples goes unnoticed
// (its install still fails; only the reason is not named).
const fullEvery = 20 * time.Millisecond

// fullWatch samples the free space of a directory's filesystem.
type fullWatch struct {
	dir  string
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	full bool
}

func watchFull(dir string) *fullWatch {
	w := &fullWatch{dir: dir, quit: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(fullEvery)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.quit:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *fullWatch) sample() {
	var st unix.Statfs_t
	if unix.Statfs(w.dir, &st) != nil || st.Blocks == 0 {
		return
	}
	if int64(st.Bavail)*int64(st.Bsize) < fullMargin {
		w.mu.Lock()
		w.full = true
		w.mu.Unlock()
	}
}

// stop ends the watch after a last sample and reports whether the
// filesystem was ever full.
func (w *fullWatch) stop() bool {
	close(w.quit)
	w.wg.Wait()
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.full
}
