package winsvc

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Run runs f: under the service manager when Windows started the program
// as the service called name (a stop request cancels f's context, and the
// service is set to restart on failure), otherwise with Ctrl-C cancelling.
func Run(name string, f func(ctx context.Context) error) error {
	isService, err := svc.IsWindowsService()
	if err == nil && !isService {
		isService = parentIsServiceManager()
	}
	if err != nil || !isService {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return f(ctx)
	}
	setRecovery(name)
	logToFile(name)
	h := &handler{run: f}
	if err := svc.Run(name, h); err != nil {
		return err
	}
	return h.err
}

// setRecovery asks the service manager to restart the service when it
// fails (first, second and later failures after 5 s).
func setRecovery(name string) {
	m, err := mgr.Connect()
	if err != nil {
		return
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return
	}
	defer s.Close()
	actions := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
	}
	s.SetRecoveryActions(actions, 24*60*60)
}

type handler struct {
	run func(ctx context.Context) error
	err error
}

// Execute implements svc.Handler: it runs the command and cancels its
// context when the service manager asks the service to stop.
func (h *handler) Execute(args []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	status <- svc.Status{State: svc.StartPending}
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil {
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}

// parentIsServiceManager reports whether services.exe started this
// process, in any session. svc.IsWindowsService also requires session 0,
// which is where Windows runs services but not where wine does; without
// this, the gateway installed by the MSI under wine never told the
// service manager it was running and the install rolled back.
func parentIsServiceManager() bool {
	var self windows.PROCESS_BASIC_INFORMATION
	size := uint32(unsafe.Sizeof(self))
	if windows.NtQueryInformationProcess(windows.CurrentProcess(), windows.ProcessBasicInformation, unsafe.Pointer(&self), size, &size) != nil {
		return false
	}
	var p *windows.SYSTEM_PROCESS_INFORMATION
	for size = uint32((unsafe.Sizeof(*p) + unsafe.Sizeof(uintptr(0))) * 1024); ; {
		buf := make([]byte, size)
		p = (*windows.SYSTEM_PROCESS_INFORMATION)(unsafe.Pointer(&buf[0]))
		err := windows.NtQuerySystemInformation(windows.SystemProcessInformation, unsafe.Pointer(p), size, &size)
		if err == nil {
			break
		}
		if err != windows.STATUS_INFO_LENGTH_MISMATCH {
			return false
		}
	}
	for {
		if p.UniqueProcessID == self.InheritedFromUniqueProcessId {
			return strings.EqualFold("services.exe", p.ImageName.String())
		}
		if p.NextEntryOffset == 0 {
			return false
		}
		p = (*windows.SYSTEM_PROCESS_INFORMATION)(unsafe.Pointer(uintptr(unsafe.Pointer(p)) + uintptr(p.NextEntryOffset)))
	}
}

// logToFile points standard output and error at
// %ProgramData%\Porthole\NAME.log (appending): a service has no console,
// and what the gateway prints on its first start (the administrator's
// password) and its log must land somewhere an administrator can read.
func logToFile(name string) {
	dir := DataDir()
	if dir == "" || os.MkdirAll(dir, 0o700) != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	os.Stdout, os.Stderr = f, f
	windows.SetStdHandle(windows.STD_OUTPUT_HANDLE, windows.Handle(f.Fd()))
	windows.SetStdHandle(windows.STD_ERROR_HANDLE, windows.Handle(f.Fd()))
}

// DataDir is %ProgramData%\Porthole, found as the ProgramData known folder
// (the folder the MSI's [CommonAppDataFolder] names), else from the
// environment variable. They agree on Windows; under wine the variable
// points elsewhere (C:\users\Public), which once split the gateway's
// configuration and its store across two folders.
func DataDir() string {
	pd, err := windows.KnownFolderPath(windows.FOLDERID_ProgramData, 0)
	if err != nil || pd == "" {
		pd = os.Getenv("ProgramData")
	}
	if pd == "" {
		return ""
	}
	return filepath.Join(pd, "Porthole")
}
