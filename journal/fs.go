package journal

import (
	"io"
	"os"
)

// file is what the journal needs of a segment file. Every write, fsync and
// truncate of the log goes through it, so tests can inject failures and
// count fsyncs deterministically.
type file interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes the written data and the file size durable (fdatasync on
	// Linux).
	Sync() error
	Truncate(size int64) error
	Close() error
}

// fileSystem opens segment files and syncs directories.
type fileSystem interface {
	OpenFile(name string, flag int, perm os.FileMode) (file, error)
	SyncDir(dir string) error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) SyncDir(dir string) error { return syncDir(dir) }

type osFile struct{ *os.File }

func (f osFile) Sync() error { return fdatasync(f.File) }

// syncDir fsyncs a directory so that file creations, renames and removals
// in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
