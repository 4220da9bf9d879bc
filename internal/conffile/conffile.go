// Package conffile writes the default configuration file a service
// starts with (--create-config), never over one an administrator wrote.
package conffile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteIfAbsent writes content to path unless a file is there already
// (also one created by a concurrent start); it makes the folder (0750)
// and the file (0640).
func WriteIfAbsent(path, content string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create config: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		if os.IsExist(err) {
			return nil
		}
		return fmt.Errorf("create config: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("create config: %w", err)
	}
	return f.Close()
}
