package wire

import "time"

// The JSON bodies of the gateway's user API (/api/v1/...), shared by the
// gateway that writes them and the clients that read them.

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// OTP is the second-factor code, for accounts that have one.
	OTP string `json:"otp,omitempty"`
}

// Ticket is the answer to a sign-in or a renewal.
type Ticket struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expiresAt"`
	User      string    `json:"user"`
	Groups    []string  `json:"groups"`
	Admin     bool      `json:"admin"`
}

// Me is GET /api/v1/me: the signed-in user.
type Me struct {
	User      string    `json:"user"`
	Groups    []string  `json:"groups"`
	Admin     bool      `json:"admin"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// UserTunnel is a tunnel as its users see it (GET /api/v1/tunnels);
// administrators also get the target and the patterns.
type UserTunnel struct {
	Context     string `json:"context"`
	LocalPort   int    `json:"localPort,omitempty"`
	Description string `json:"description,omitempty"`
	// Kind guesses the database behind it from the target's port
	// ("mysql", "postgresql", "sqlserver", "oracle" or empty), so clients
	// can offer the right connection strings without seeing the target.
	Kind          string `json:"kind,omitempty"`
	SocketAddress string `json:"socketAddress,omitempty"` // administrators only
	UserGroups    string `json:"userGroups,omitempty"`    // administrators only
}

// TargetCheck is POST /api/v1/tunnels/{context}/check: whether the
// gateway reaches the tunnel's target now.
type TargetCheck struct {
	Reachable bool `json:"reachable"`
	// Message says how fast, or why not, without the target's address:
	// "Reachable in 0.4 ms." or the reason.
	Message string `json:"message"`
}

// PasswordChange is POST /api/v1/password: a user's change of their own
// password.
type PasswordChange struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
}
