package launcher

import (
	"os"
	"os/exec"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows each started program is put in a Job Object that kills
// every process in it when its handle closes: whatever the program
// started is stopped with it, and the job's count of active processes
// counts its children toward maxProcesses. (A child started in the
// moment between the program's start and its assignment to the job
// escapes; starting it suspended would need more than os/exec offers.)

// launchEnv is the environment variable that marks a launch's processes.
const launchEnv = "PORTHOLE_LAUNCH"

// jobs maps a program's pid to its job.
var jobs sync.Map // int -> windows.Handle

// prepare changes nothing before the start on Windows.
func prepare(cmd *exec.Cmd) {}

// started puts the program in a job that kills everything in it when the
// job closes (sweep).
func started(p *os.Process) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(p.Pid))
	if err != nil {
		windows.CloseHandle(job)
		return
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		windows.CloseHandle(job)
		return
	}
	jobs.Store(p.Pid, job)
}

// sweep closes the program's job, which kills what is left in it.
func sweep(pid int, token string) {
	if h, ok := jobs.LoadAndDelete(pid); ok {
		windows.CloseHandle(h.(windows.Handle))
	}
}

// basicAccounting is JOBOBJECT_BASIC_ACCOUNTING_INFORMATION.
type basicAccounting struct {
	TotalUserTime, TotalKernelTime, ThisPeriodTotalUserTime, ThisPeriodTotalKernelTime int64
	TotalPageFaultCount, TotalProcesses, ActiveProcesses, TotalTerminatedProcesses     uint32
}

// countMarked counts the processes in all of this launcher's jobs.
func countMarked(prefix string) int {
	n := 0
	jobs.Range(func(_, v any) bool {
		var info basicAccounting
		if windows.QueryInformationJobObject(v.(windows.Handle), windows.JobObjectBasicAccountingInformation,
			uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil) == nil {
			n += int(info.ActiveProcesses)
		}
		return true
	})
	return n
}
