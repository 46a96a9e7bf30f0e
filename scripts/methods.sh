# Sourced by the shell scripts: the method table (methods.tsv at the repository root), the one list of
# the suite's methods; Python reads the same file with adcommon.methods.
METHOD_TABLE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/methods.tsv"

_method_column() {  # name column-number: that cell of the method's row (empty if unknown)
    awk -F'\t' -v m="$1" -v c="$2" '!/^[[:space:]]*(#|$)/ && $1 == m { print $c; exit }' "$METHOD_TABLE"
}
method_names() {  # every method, comma-separated, in the table's order
    awk -F'\t' '!/^[[:space:]]*(#|$)/ { printf "%s%s", (n++ ? "," : ""), $1 } END { print "" }' "$METHOD_TABLE"
}
folder_of() { _method_column "$1" 2; }        # method -> paper folder (empty if unknown)
quickstart_flags() { _method_column "$1" 5; }   # method -> the quick-start train.py flags
real_flags() { _method_column "$1" 7; }         # method -> the train.py flags for real images on 2 CPU cores
