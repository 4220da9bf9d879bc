package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porthole/porthole/gateway/store"
)

// Gateways sharing a PostgreSQL store show each other's live connections
// on the portal and close them for each other: each publishes a snapshot
// of its own in the store every livePublishPeriod, and a Disconnect for a
// connection on another gateway travels as a message on the change feed.
const (
	settingLivePrefix = "live:"
	livePublishPeriod = 2 * time.Second
	// liveStale: a snapshot older than this belongs to a gateway that is
	// gone.
	liveStale = 5 * livePublishPeriod
)

type liveSnapshot struct {
	At    time.Time  `json:"at"`
	Conns []liveView `json:"conns"`
}

func (s *Server) localLive(keep func(*liveConn) bool) []liveView {
	var out []liveView
	for _, lc := range s.liveSnapshot(keep) {
		out = append(out, liveView{ID: lc.id, Gateway: s.cfg.Name, Context: lc.context, User: lc.user, Since: lc.started,
			Remote: lc.remote, Up: lc.up.Load(), Down: lc.down.Load()})
	}
	return out
}

// publishLive writes this gateway's live connections for the others. An
// idle gateway writes once, not every period (an empty list cannot go
// stale): *wroteEmpty remembers that the last write was empty.
func (s *Server) publishLive(ctx context.Context, wroteEmpty *bool) {
	conns := s.localLive(nil)
	if len(conns) == 0 && *wroteEmpty {
		return
	}
	b, _ := json.Marshal(liveSnapshot{At: s.cfg.Now().UTC(), Conns: conns})
	if err := s.st.SetSetting(ctx, settingLivePrefix+s.cfg.Name, string(b)); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("publish the live connections for the other gateways", "err", err)
		}
		return
	}
	*wroteEmpty = len(conns) == 0
}

// LiveConnections lists the live connections of a tunnel on this gateway
// and, with a shared store, on every other gateway (as of their last
// snapshot, at most livePublishPeriod old), oldest first.
func (s *Server) LiveConnections(ctx context.Context, context string) []liveView {
	conns := s.localLive(func(lc *liveConn) bool { return strings.EqualFold(lc.context, context) })
	if s.cfg.IsPostgres() {
		snaps, err := s.st.SettingsWithPrefix(ctx, settingLivePrefix)
		if err != nil {
			s.log.Warn("read the other gateways' live connections", "err", err)
		}
		for key, v := range snaps {
			if strings.TrimPrefix(key, settingLivePrefix) == s.cfg.Name {
				continue
			}
			var snap liveSnapshot
			if json.Unmarshal([]byte(v), &snap) != nil || s.cfg.Now().Sub(snap.At) > liveStale {
				continue
			}
			for _, c := range snap.Conns {
				if strings.EqualFold(c.Context, context) {
					conns = append(conns, c)
				}
			}
		}
	}
	slices.SortFunc(conns, func(a, b liveView) int { return a.Since.Compare(b.Since) })
	return conns
}

// DisconnectAnywhere closes a live connection on whichever gateway holds
// it: here at once, elsewhere by asking that gateway over the change feed.
func (s *Server) DisconnectAnywhere(ctx context.Context, actor, gateway string, id uint64) error {
	if gateway == "" || gateway == s.cfg.Name {
		_, err := s.Disconnect(ctx, actor, id)
		return err
	}
	feed, ok := s.st.(store.ChangeFeed)
	if !ok || !s.cfg.IsPostgres() {
		return errorf(http.StatusNotFound, "that connection is on gateway %s, which this gateway cannot reach", gateway)
	}
	if strings.ContainsAny(gateway+actor, " \n") {
		return errorf(http.StatusBadRequest, "bad gateway or user name")
	}
	if err := feed.Send(ctx, fmt.Sprintf("disconnect %s %d %s", gateway, id, actor)); err != nil {
		return internal(err)
	}
	return nil
}

// command handles a message another gateway sent on the change feed.
func (s *Server) command(ctx context.Context, msg string) {
	f := strings.Fields(msg)
	if len(f) != 4 || f[0] != "disconnect" || f[1] != s.cfg.Name {
		return
	}
	id, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return
	}
	if _, err := s.Disconnect(ctx, f[3], id); err != nil {
		s.log.Info("disconnect asked by another gateway", "conn", id, "err", err)
	}
}
