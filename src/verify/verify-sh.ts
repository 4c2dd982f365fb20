/**
 * The `verify.sh` written into every evidence folder: a POSIX shell script that checks the folder
 * with openssl and POSIX tools only (no jq, no python), doing exactly what VERIFY.md explains:
 *
 * 1. SHA256SUMS: every exported file is the one exported.
 * 2. Each Sigstore bundle: DSSE PAE(payloadType, payload) (DSSE v1 protocol.md, "Signature
 *    definition") rebuilt with printf, the DER signature checked with `openssl dgst -sha256 -verify`.
 * 3. The audit checkpoint: a C2SP signed note; the text before the blank line is what was signed,
 *    the signature is base64(4-byte key ID || DER ECDSA signature) (c2sp.org/signed-note, type 0x02).
 * 4. Each audit entry's inclusion proof, RFC 9162 §2.1.3.2, with leaf = SHA-256(0x00 || entry) and
 *    node = SHA-256(0x01 || left || right) (RFC 9162 §2.1.1), up to the checkpoint's root.
 *
 * Field extraction relies on the exported files' shapes (bundles as written by veritrail, proofs as
 * one-line JSON); the values it extracts are base64 or hex, which hold no JSON punctuation.
 */
export const VERIFY_SH = `#!/bin/sh
# Checks this veritrail evidence folder with openssl only. See VERIFY.md for each step by hand.
set -eu
cd "$(dirname "$0")"
command -v openssl >/dev/null 2>&1 || { echo "verify.sh needs openssl on PATH" >&2; exit 2; }
tmp=$(mktemp -d "\${TMPDIR:-/tmp}/veritrail-verify.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; failures=$((failures + 1)); }

# The JSON string value of "$1" in file $2 (the first one).
field() {
  tr ',{}[]' '\\n\\n\\n\\n\\n' < "$2" | sed -n "s/^[[:space:]]*\\"$1\\"[[:space:]]*:[[:space:]]*\\"\\([^\\"]*\\)\\".*/\\1/p" | head -n 1
}
b64d() { openssl base64 -d -A; }
sha() { openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1; }

# 1. Every file is the one exported.
while read -r hex name; do
  if [ ! -f "$name" ]; then bad "$name is missing"
  elif [ "$(sha "$name")" = "$hex" ]; then :
  else bad "$name does not match SHA256SUMS"; fi
done < SHA256SUMS
[ "$failures" -eq 0 ] && ok "SHA256SUMS: every file is intact"

# 2. Every attestation: DSSE signature over PAE(payloadType, payload).
for b in *.sigstore.json; do
  type=$(field payloadType "$b"); payload=$(field payload "$b"); sig=$(field sig "$b")
  printf '%s' "$payload" | b64d > "$tmp/payload"
  printf '%s' "$sig" | b64d > "$tmp/sig.der"
  len=$(wc -c < "$tmp/payload" | tr -d ' ')
  printf 'DSSEv1 %s %s %s ' "\${#type}" "$type" "$len" > "$tmp/pae"
  cat "$tmp/payload" >> "$tmp/pae"
  subject=$(sed 's/.*"subject":\\[//' "$tmp/payload" | tr ',{}' '\\n\\n\\n' | sed -n 's/^"sha256":"\\([0-9a-f]*\\)"$/sha256:\\1/p' | head -n 1)
  if openssl dgst -sha256 -verify signing.pub.pem -signature "$tmp/sig.der" "$tmp/pae" >/dev/null 2>&1; then
    ok "$b: signature verifies; subject $subject"
  else
    bad "$b: signature does NOT verify with signing.pub.pem"
  fi
done

# 3. The audit checkpoint: signed note text, then "— <name> base64(keyid[4] || sig)".
cp=audit/checkpoint.txt
sed '/^$/,$d' "$cp" > "$tmp/note"
tail -n 1 "$cp" | awk '{print $3}' | tr -d '\\n' | b64d | tail -c +5 > "$tmp/cp.der"
size=$(sed -n 2p "$cp"); root=$(sed -n 3p "$cp")
if openssl dgst -sha256 -verify audit.pub.pem -signature "$tmp/cp.der" "$tmp/note" >/dev/null 2>&1; then
  ok "audit/checkpoint.txt: signed by audit.pub.pem, $size entries"
else
  bad "audit/checkpoint.txt: signature does NOT verify with audit.pub.pem"
fi

# 4. Each entry of the run is in that checkpoint (RFC 9162 2.1.3.2).
inner() { { printf '\\001'; cat "$1" "$2"; } | openssl dgst -sha256 -binary > "$tmp/n"; mv "$tmp/n" "$tmp/r"; }
for p in audit/proofs/*.proof.json; do
  [ -f "$p" ] || continue
  seq=$(basename "$p" .proof.json)
  e="audit/entries/$seq.json"
  fn=$(sed -n 's/.*"leafIndex":\\([0-9]*\\).*/\\1/p' "$p"); tsize=$(sed -n 's/.*"treeSize":\\([0-9]*\\).*/\\1/p' "$p")
  if [ "$tsize" != "$size" ]; then bad "$p: proof is for tree size $tsize, the checkpoint has $size"; continue; fi
  { printf '\\000'; cat "$e"; } | openssl dgst -sha256 -binary > "$tmp/r"
  sn=$((tsize - 1)); okp=1
  for h in $(sed -n 's/.*"inclusionProof":\\[\\([^]]*\\)\\].*/\\1/p' "$p" | tr -d '"' | tr ',' ' '); do
    printf '%s' "$h" | b64d > "$tmp/p"
    if [ "$sn" -eq 0 ]; then okp=0; break; fi
    if [ $((fn % 2)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
      inner "$tmp/p" "$tmp/r"
      if [ $((fn % 2)) -eq 0 ]; then
        while [ $((fn % 2)) -eq 0 ] && [ "$fn" -ne 0 ]; do fn=$((fn / 2)); sn=$((sn / 2)); done
      fi
    else
      inner "$tmp/r" "$tmp/p"
    fi
    fn=$((fn / 2)); sn=$((sn / 2))
  done
  got=$(openssl base64 -A < "$tmp/r")
  if [ "$okp" -eq 1 ] && [ "$sn" -eq 0 ] && [ "$got" = "$root" ]; then ok "$e: included in the checkpoint"
  else bad "$e: NOT included in the signed checkpoint"; fi
done

if [ "$failures" -eq 0 ]; then echo "verified: every check holds"; else echo "NOT VERIFIED: $failures check(s) fail"; exit 1; fi
`;
