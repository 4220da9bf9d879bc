# Sourced by scripts/test (bash): provisions a private Samba Active
# Directory domain controller (realm PORTHOLE.TEST) under "$work/ad", with
# LDAP and LDAPS on 127.0.0.1:389/636 and its Kerberos KDC on
# 127.0.0.1:88, and exports how to reach it as PORTHOLE_TEST_AD_*. The
# gateway's service account porthole-gw owns the SPN HTTP/localhost,
# whose keys are exported to a keytab. The caller runs stop_directory.
#
# Samba's ports are fixed, so only one such domain runs on a machine at a
# time; a leftover one from an earlier run is stopped first.

stop_directory() {
  if [ -n "${ad_pid:-}" ]; then
    kill "$ad_pid" 2>/dev/null || true
    wait "$ad_pid" 2>/dev/null || true
  fi
}

ad=$work/ad
ad_realm=PORTHOLE.TEST
ad_admin_pw='Porthole-Adm1n!'
ad_gw_pw='Porthole-Gw-Acc0unt!'
echo "==> provisioning a Samba AD domain controller ($ad_realm) under $ad"
pkill -f 'samba .*porthole-test' 2>/dev/null || true
# A system Samba DC (started by its package) would hold the same ports.
if command -v ss >/dev/null && ss -ltn | grep -qE '127\.0\.0\.1:389 |0\.0\.0\.0:389 |\*:389 '; then
  echo "    something already listens on port 389; stopping a system samba-ad-dc"
  (service samba-ad-dc stop || systemctl stop samba-ad-dc || pkill -x samba) >/dev/null 2>&1 || true
  sleep 1
fi
install -d "$ad/tls"
# A certificate for 127.0.0.1 and localhost, signed by a CA of its own.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Porthole test AD CA" \
  -keyout "$ad/tls/ca.key" -out "$ad/tls/ca.pem" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$ad/tls/key.pem" -out "$ad/tls/req.pem" >/dev/null 2>&1
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$ad/tls/ext"
openssl x509 -req -in "$ad/tls/req.pem" -CA "$ad/tls/ca.pem" -CAkey "$ad/tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$ad/tls/ext" -out "$ad/tls/cert.pem" >/dev/null 2>&1
chmod 600 "$ad/tls/key.pem"
samba-tool domain provision --realm="$ad_realm" --domain=PORTHOLE --adminpass="$ad_admin_pw" \
  --server-role=dc --dns-backend=NONE --targetdir="$ad" --host-name=portholedc \
  --option="netbios name=PORTHOLEDC" \
  --option="interfaces=lo" --option="bind interfaces only=yes" \
  --option="server services=ldap,kdc,winbindd" --option="pid directory=$ad" \
  --option="tls keyfile=$ad/tls/key.pem" --option="tls certfile=$ad/tls/cert.pem" --option="tls cafile=$ad/tls/ca.pem" \
  --option="log file=$ad/log.%m" >"$ad/provision.log" 2>&1 || { cat "$ad/provision.log"; exit 1; }
# provision does not carry every option into smb.conf: add what it dropped.
for opt in "tls keyfile = $ad/tls/key.pem" "tls certfile = $ad/tls/cert.pem" "tls cafile = $ad/tls/ca.pem"; do
  grep -qF "${opt%% =*} =" "$ad/etc/smb.conf" || sed -i "/^\[global\]/a\\	$opt" "$ad/etc/smb.conf"
done
samba -s "$ad/etc/smb.conf" -i --debug-stdout >"$ad/samba.log" 2>&1 &
ad_pid=$!
for _ in $(seq 1 150); do
  LDAPTLS_CACERT="$ad/tls/ca.pem" ldapsearch -x -H ldaps://127.0.0.1 -D "Administrator@porthole.test" -w "$ad_admin_pw" \
    -b "" -s base defaultNamingContext >/dev/null 2>&1 && break
  kill -0 "$ad_pid" 2>/dev/null || { cat "$ad/samba.log"; echo "samba exited"; exit 1; }
  sleep 0.2
done
# NTLM sign-ins (squid's ntlm_auth helper, running as the proxy user) go
# through the domain controller's winbindd and its privileged pipe.
for _ in $(seq 1 100); do [ -S /run/samba/winbindd/pipe ] && break; sleep 0.1; done
getent group proxy >/dev/null && chgrp proxy "$ad/state/winbindd_privileged" && chmod 750 "$ad/state/winbindd_privileged"
# winbindd's own connection to the domain controller comes up a little
# after its pipe; until then an NTLM sign-in fails with
# NT_STATUS_UNSUCCESSFUL. Wait until it signs a domain account in.
if command -v wbinfo >/dev/null; then
  for _ in $(seq 1 100); do
    wbinfo -a "PORTHOLE\\Administrator%$ad_admin_pw" >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
samba-tool user add porthole-gw "$ad_gw_pw" -s "$ad/etc/smb.conf" >/dev/null
samba-tool user setexpiry porthole-gw --noexpiry -s "$ad/etc/smb.conf" >/dev/null
samba-tool spn add HTTP/localhost porthole-gw -s "$ad/etc/smb.conf"
samba-tool domain exportkeytab "$ad/http.keytab" --principal=HTTP/localhost -s "$ad/etc/smb.conf" >/dev/null
chmod 644 "$ad/http.keytab"
cat > "$ad/krb5.conf" <<KRB
[libdefaults]
	default_realm = $ad_realm
	dns_lookup_realm = false
	dns_lookup_kdc = false
	rdns = false
	udp_preference_limit = 1
[realms]
	$ad_realm = {
		kdc = 127.0.0.1:88
		admin_server = 127.0.0.1
	}
[domain_realm]
	localhost = $ad_realm
KRB

export PORTHOLE_TEST_AD_URL=ldaps://127.0.0.1:636 PORTHOLE_TEST_AD_CA="$ad/tls/ca.pem"
export PORTHOLE_TEST_AD_BASE="DC=porthole,DC=test" PORTHOLE_TEST_AD_REALM="$ad_realm"
export PORTHOLE_TEST_AD_ADMIN="CN=Administrator,CN=Users,DC=porthole,DC=test" PORTHOLE_TEST_AD_ADMIN_PASSWORD="$ad_admin_pw"
export PORTHOLE_TEST_AD_BIND="CN=porthole-gw,CN=Users,DC=porthole,DC=test" PORTHOLE_TEST_AD_BIND_PASSWORD="$ad_gw_pw"
export PORTHOLE_TEST_KEYTAB="$ad/http.keytab" PORTHOLE_TEST_KRB5_CONF="$ad/krb5.conf" PORTHOLE_TEST_AD_SMBCONF="$ad/etc/smb.conf"
