/**
 * The `verify.sh` written into every evidence folder: a POSIX shell script that checks the folder
 * with a POSIX `sh`, coreutils (cat csplit cut head tail tr wc mktemp rm mv dirname basename) and openssl,
 * nothing else (no sed, awk, grep, jq or python), doing exactly what VERIFY.md explains:
 *
 * 1. SHA256SUMS: every exported file is the one exported.
 * 2. Each Sigstore bundle: DSSE PAE(payloadType, payload) (DSSE v1 protocol.md, "Signature
 *    definition") rebuilt with printf, the DER signature checked with `openssl dgst -sha256 -verify`.
 * 3. The signed report statement (model-report/v1) names the sha256 of every evidence file: each
 *    file present must match it, and each one it names must be present (the model may be left out
 *    only by `export --without-model`, and the script then says plainly it was not checked).
 * 4. report.html carries that very statement (the embedded bundle's payload) and shows its digest.
 * 5. The audit checkpoint: a C2SP signed note; the text before the blank line is what was signed,
 *    the signature is base64(4-byte key ID || DER ECDSA signature) (c2sp.org/signed-note, type 0x02).
 * 6. Each audit entry's inclusion proof, RFC 9162 §2.1.3.2, with leaf = SHA-256(0x00 || entry) and
 *    node = SHA-256(0x01 || left || right) (RFC 9162 §2.1.1), up to the checkpoint's root.
 *
 * JSON fields are read with `tr` and shell parameter expansion; this relies on the exported files'
 * shapes (bundles as veritrail writes them, statements in RFC 8785 form, proofs as one-line JSON)
 * and on the values read being base64, hex, numbers or file paths, which hold no JSON punctuation.
 */
export const VERIFY_SH = `#!/bin/sh
# Checks this veritrail evidence folder with sh, coreutils and openssl only. See VERIFY.md.
set -u
cd "$(dirname "$0")" || exit 2
command -v openssl >/dev/null 2>&1 || { echo "verify.sh needs openssl on PATH" >&2; exit 2; }
tmp=$(mktemp -d "\${TMPDIR:-/tmp}/veritrail-verify.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
unchecked=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; failures=$((failures + 1)); }

# The first JSON string value of key $1 in file $2: split at JSON punctuation, cut at the first line
# with the key (csplit), and take the value between the 3rd and 4th double quote. No shell read loop:
# dash reads a byte per system call, so long base64 lines go through coreutils instead.
field() {
  rm -f "$tmp/f."*
  tr ',{}[]' '\\n\\n\\n\\n\\n' < "$2" > "$tmp/lines"
  csplit -s -f "$tmp/f." "$tmp/lines" "/\\"$1\\":/" 2>/dev/null || return 0
  head -n 1 "$tmp/f.01" | cut -d '"' -f 4
}
b64d() { openssl base64 -d -A; }
sha() { openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1; }

# 1. Every file is the one exported. One openssl run hashes them all into $tmp/actual ("hex name").
: > "$tmp/actual"
set --
while read -r hex name; do
  if [ -f "$name" ]; then set -- "$@" "$name"; else bad "$name is missing"; fi
done < SHA256SUMS
[ "$#" -gt 0 ] && openssl dgst -sha256 -r "$@" | while read -r hex name; do printf '%s %s\n' "$hex" "\${name#*}"; done > "$tmp/actual"
digest_of() { sha "$1"; }
while read -r hex name; do printf '%s  %s\n' "$hex" "$name"; done < "$tmp/actual" > "$tmp/actual.sums"
if [ "$(cat SHA256SUMS)" != "$(cat "$tmp/actual.sums")" ]; then
  while read -r hex name; do
    [ -f "$name" ] || continue
    [ "$(digest_of "$name")" = "$hex" ] || bad "$name does not match SHA256SUMS"
  done < SHA256SUMS
fi
[ "$failures" -eq 0 ] && ok "SHA256SUMS: every file is intact"

# 2. Every attestation: DSSE signature over PAE(payloadType, payload).
for b in *.sigstore.json; do
  [ -f "$b" ] || continue
  type=$(field payloadType "$b"); field payload "$b" > "$tmp/payload.b64"; field sig "$b" > "$tmp/sig.b64"
  b64d < "$tmp/payload.b64" > "$tmp/payload" 2>/dev/null
  b64d < "$tmp/sig.b64" > "$tmp/sig.der" 2>/dev/null
  len=$(wc -c < "$tmp/payload" | tr -d ' ')
  printf 'DSSEv1 %s %s %s ' "\${#type}" "$type" "$len" > "$tmp/pae"
  cat "$tmp/payload" >> "$tmp/pae"
  if openssl dgst -sha256 -verify signing.pub.pem -signature "$tmp/sig.der" "$tmp/pae" >/dev/null 2>&1; then
    ok "$b: signature verifies"
    cat "$tmp/payload" > "$tmp/statement.\${b%.sigstore.json}.json"
  else
    bad "$b: signature does NOT verify with signing.pub.pem"
  fi
done

# 3. The signed report names the sha256 of every evidence file.
report="$tmp/statement.report.json"
if [ ! -f report.sigstore.json ]; then bad "report.sigstore.json is missing: no signed statement names the files"
elif [ ! -f "$report" ]; then bad "the report statement is not signed by signing.pub.pem: the files cannot be checked against it"
else
  # The array after "files": (RFC 8785 JSON: no whitespace; its items hold no bracket).
  tr '[]' '\\n\\n' < "$report" > "$tmp/arrays"
  : > "$tmp/files"
  if csplit -s -f "$tmp/a." "$tmp/arrays" '/"files":$/' 2>/dev/null; then
    head -n 2 "$tmp/a.01" | tail -n 1 | tr ',{}' '\\n\\n\\n' > "$tmp/files"
  fi
  h=""
  named=0
  while IFS= read -r l; do
    case $l in
      '"sha256":"'*) h=\${l#'"sha256":"'}; h=\${h%'"'} ;;
      '"name":"'*)
        n=\${l#'"name":"'}; n=\${n%'"'}; named=$((named + 1))
        case $n in /*|*..*) bad "the report names a file outside the folder: $n"; continue ;; esac
        if [ -f "$n" ]; then
          if [ "$(digest_of "$n")" = "$h" ]; then ok "$n: sha256 is the one the signed report names"
          else bad "$n: sha256 is NOT the one the signed report names (sha256:$h)"; fi
        elif [ "$n" = model.tar.gz ] && [ -f MODEL-NOT-INCLUDED.txt ]; then
          echo "NOT CHECKED  model.tar.gz: not in this export (made with --without-model); the signed report names sha256:$h"
          unchecked=$((unchecked + 1))
        else bad "$n: named by the signed report but missing"; fi
        ;;
    esac
  done < "$tmp/files"
  [ "$named" -gt 0 ] || bad "the report statement names no files"
  echo "      the signed report says run $(field runId "$report") ended $(field status "$report")"

  # 4. report.html carries this statement and shows its digest.
  if [ -f report.html ]; then
    digest=$(sha "$report")
    field payload report.sigstore.json > "$tmp/rp.b64"; signed=$(cat "$tmp/rp.b64")
    # csplit (coreutils) cuts the file at the marker line; the bundle is the line after it.
    embedded=""; shown=0
    if csplit -s -f "$tmp/html." report.html '/^<script type="application\\/json" id="veritrail-report-bundle">$/' 2>/dev/null; then
      head -n 2 "$tmp/html.01" | tail -n 1 > "$tmp/embedded.json"
      embedded=$(field payload "$tmp/embedded.json")
    fi
    csplit -s -f "$tmp/shown." report.html "/sha256:$digest/" 2>/dev/null && shown=1
    if [ "$embedded" != "$signed" ]; then bad "report.html does NOT carry the signed report statement"
    elif [ "$shown" != 1 ]; then bad "report.html does NOT show the statement digest sha256:$digest"
    else ok "report.html carries the signed statement sha256:$digest (its text: veritrail report --check report.html --key signing.pub.pem)"; fi
  fi
fi

# 5. The audit checkpoint: signed note text, then "— <name> base64(keyid[4] || sig)".
cpf=audit/checkpoint.txt
if [ -f "$cpf" ]; then
  : > "$tmp/note"
  while IFS= read -r l; do [ -z "$l" ] && break; printf '%s\\n' "$l" >> "$tmp/note"; done < "$cpf"
  tail -n 1 "$cpf" | cut -d ' ' -f 3 | tr -d '\\n' | b64d 2>/dev/null | tail -c +5 > "$tmp/cp.der"
  size=$(head -n 2 "$cpf" | tail -n 1); root=$(head -n 3 "$cpf" | tail -n 1)
  if openssl dgst -sha256 -verify audit.pub.pem -signature "$tmp/cp.der" "$tmp/note" >/dev/null 2>&1; then
    ok "audit/checkpoint.txt: signed by audit.pub.pem, $size entries"
  else
    bad "audit/checkpoint.txt: signature does NOT verify with audit.pub.pem"
  fi
else
  bad "audit/checkpoint.txt is missing"; size=0; root=""
fi

# 6. Each entry of the run is in that checkpoint (RFC 9162 2.1.3.2).
# One interior node, RFC 9162 2.1.1: SHA-256(0x01 || left || right), the proof hash $2 (base64)
# on side $1; the running hash alternates between two files (no mv).
node() {
  if [ "$cur" = "$tmp/r0" ]; then nxt=$tmp/r1; else nxt=$tmp/r0; fi
  if [ "$1" = left ]; then
    { printf '\\001'; printf '%s' "$2" | b64d; cat "$cur"; } | openssl dgst -sha256 -binary > "$nxt"
  else
    { printf '\\001'; cat "$cur"; printf '%s' "$2" | b64d; } | openssl dgst -sha256 -binary > "$nxt"
  fi
  cur=$nxt
}
num() { v=\${2#*"\\"$1\\":"}; printf '%s' "\${v%%,*}"; }
for p in audit/proofs/*.proof.json; do
  [ -f "$p" ] || continue
  seq=\${p##*/}; seq=\${seq%.proof.json}
  e="audit/entries/$seq.json"
  IFS= read -r j < "$p"
  fn=$(num leafIndex "$j"); tsize=$(num treeSize "$j")
  if [ "$tsize" != "$size" ]; then bad "$p: proof is for tree size $tsize, the checkpoint has $size"; continue; fi
  cur=$tmp/r0
  { printf '\\000'; cat "$e"; } | openssl dgst -sha256 -binary > "$cur"
  sn=$((tsize - 1)); okp=1
  hashes=\${j#*'"inclusionProof":['}; hashes=\${hashes%%]*}
  for h in $(printf '%s' "$hashes" | tr '",' '  '); do
    if [ "$sn" -eq 0 ]; then okp=0; break; fi
    if [ $((fn % 2)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
      node left "$h"
      if [ $((fn % 2)) -eq 0 ]; then
        while [ $((fn % 2)) -eq 0 ] && [ "$fn" -ne 0 ]; do fn=$((fn / 2)); sn=$((sn / 2)); done
      fi
    else
      node right "$h"
    fi
    fn=$((fn / 2)); sn=$((sn / 2))
  done
  got=$(openssl base64 -A < "$cur")
  if [ "$okp" -eq 1 ] && [ "$sn" -eq 0 ] && [ "$got" = "$root" ]; then ok "$e: included in the checkpoint"
  else bad "$e: NOT included in the signed checkpoint"; fi
done

if [ "$failures" -ne 0 ]; then echo "NOT VERIFIED: $failures check(s) fail"; exit 1; fi
if [ "$unchecked" -ne 0 ]; then
  echo "verified, EXCEPT the model: it is not in this export, so it was NOT checked; every other check holds"
  exit 0
fi
echo "verified: every check holds"
`;
