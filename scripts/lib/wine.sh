# Sourced by scripts/test (bash): a fresh 64-bit wine prefix under
# "$work/wine" for the Windows tests (MSIs, service, CLI, control API),
# exported as PORTHOLE_TEST_WINEPREFIX. Debian's wine 8.0 lacks
# bcryptprimitives.dll, whose ProcessPrng Go's Windows runtime imports; a
# test-only shim (scripts/lib/bcryptprimitives.c, ProcessPrng over
# RtlGenRandom) is built with mingw and put in the prefix's system32.
# The caller runs stop_wine.

stop_wine() {
  [ -n "${WINEPREFIX:-}" ] && timeout 20 wineserver -k >/dev/null 2>&1 || true
}

export WINEPREFIX="$work/wine" WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
echo "==> making a wine prefix under $WINEPREFIX"
# No display: wine's programs here are console programs and services.
DISPLAY= timeout 180 wineboot -i >"$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log"; echo "wineboot failed"; exit 1; }
x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bcryptprimitives.dll" \
  scripts/lib/bcryptprimitives.c scripts/lib/bcryptprimitives.def -ladvapi32
cp "$work/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
# A wineserver that stays up while the tests run: by default it exits a
# few seconds after the last program, taking the services (the gateway
# installed by its MSI) with it; Windows' service manager never does.
timeout 20 wineserver -k >/dev/null 2>&1 || true
wineserver -p >/dev/null 2>&1
# Start wine's service manager now, its output nowhere, so it never holds
# a test's output pipe open.
timeout 60 wine cmd /c exit >/dev/null 2>&1 </dev/null || true
export PORTHOLE_TEST_WINEPREFIX="$WINEPREFIX"
