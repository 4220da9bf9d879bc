// Command helper is a program the launcher tests start: it listens where
// --listenuri says and serves one connection in the --mode given.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listenuri", "", "tcp://HOST:PORT to listen on")
	mode := flag.String("mode", "echo", "echo | exit | describe | never-listen")
	envNames := flag.String("env", "", "comma-separated environment variables to describe")
	ignoreInt := flag.Bool("ignore-interrupt", false, "ignore SIGINT")
	spawn := flag.Int("spawn", 0, "start this many children that sleep, in their own sessions (setsid)")
	flag.Parse()
	if *mode == "sleep" {
		signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
		time.Sleep(time.Hour)
		return
	}
	for range *spawn {
		child := exec.Command(os.Args[0], "--mode", "sleep")
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("helper child pid=%d\n", child.Process.Pid)
	}
	fmt.Printf("helper pid=%d mode=%s\n", os.Getpid(), *mode)
	fmt.Fprintln(os.Stderr, "helper says hello on stderr")
	if *ignoreInt {
		signal.Ignore(syscall.SIGINT)
	}
	if *mode == "never-listen" {
		time.Sleep(time.Hour)
		return
	}
	u, err := url.Parse(*listen)
	if err != nil || u.Scheme != "tcp" {
		fmt.Fprintln(os.Stderr, "bad --listenuri", *listen)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c, err := ln.Accept()
	if err != nil {
		os.Exit(2)
	}
	switch *mode {
	case "echo":
		// Answer only after the client's FIN: proves half-close.
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	case "exit":
		c.Write([]byte("bye\n"))
		os.Exit(3)
	case "describe":
		env := map[string]string{}
		for _, n := range strings.Split(*envNames, ",") {
			if n != "" {
				env[n] = os.Getenv(n)
			}
		}
		json.NewEncoder(c).Encode(map[string]any{"args": os.Args[1:], "env": env})
		c.Close()
	}
	if *ignoreInt {
		time.Sleep(time.Hour)
	}
}
