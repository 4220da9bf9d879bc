package launcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/porthole/porthole/internal/duration"
)

// Config is the launcher's JSON configuration (--config FILE). Every field
// documents what its zero value means. Relative paths are relative to the
// config file's folder.
type Config struct {
	// Listen is the address clients connect to; "" means 127.0.0.1:19340.
	Listen string `json:"listen,omitempty"`
	// ImageFolder is where images (e.g. AIMMS versions) live: ${ImageFolder}.
	ImageFolder string `json:"imageFolder,omitempty"`
	// RulesDir holds the *.rule files; "" means rules/ beside the config.
	RulesDir string `json:"rulesDir,omitempty"`
	// Variables are user-defined ${Name} values, like "Compiler".
	Variables map[string]string `json:"variables,omitempty"`
	// MaxProcesses bounds processes running at once (503 past it); 0
	// means 16.
	MaxProcesses int `json:"maxProcesses,omitempty"`
	// StartTimeout is how long a process may take to listen (504 after);
	// 0 means 30s.
	StartTimeout Duration `json:"startTimeout,omitempty"`
	// StopGrace is how long a process has between the interrupt and the
	// kill; 0 means 5s.
	StopGrace Duration `json:"stopGrace,omitempty"`
	// ListenAddress is where processes are told to listen:
	// ${ListenAddress}; "" means 127.0.0.1.
	ListenAddress string `json:"listenAddress,omitempty"`

	// ServerPath is ${ServerPath}; "" means the launcher binary's folder.
	ServerPath string `json:"-"`
	// Logger; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Duration is a time.Duration written as "30s" or a number of seconds.
type Duration = duration.Duration

// LoadConfig reads a config file and resolves its paths.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return c, fmt.Errorf("config %s:%d: %v", path, bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))+1, err)
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	if c.RulesDir == "" {
		c.RulesDir = "rules"
	}
	if !filepath.IsAbs(c.RulesDir) {
		c.RulesDir = filepath.Join(dir, c.RulesDir)
	}
	if c.ImageFolder != "" && !filepath.IsAbs(c.ImageFolder) {
		c.ImageFolder = filepath.Join(dir, c.ImageFolder)
	}
	return c, nil
}

// CheckAndSetDefaults validates c and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:19340"
	}
	if c.RulesDir == "" {
		return errors.New("config: rulesDir is not set")
	}
	if c.MaxProcesses == 0 {
		c.MaxProcesses = 16
	}
	if c.MaxProcesses < 0 {
		return errors.New("config: maxProcesses must not be negative")
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = Duration(30 * time.Second)
	}
	if c.StopGrace == 0 {
		c.StopGrace = Duration(5 * time.Second)
	}
	if c.ListenAddress == "" {
		c.ListenAddress = "127.0.0.1"
	}
	for name := range c.Variables {
		if isPredefined(name) || name == "" {
			return fmt.Errorf("config: variable %q is predefined or empty", name)
		}
	}
	if c.ServerPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("config: find the launcher's folder: %w", err)
		}
		c.ServerPath = filepath.Dir(exe)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
