# Sourced by run_all_mvtec.sh and quickstart.sh: method name -> paper folder (empty if unknown).
folder_of() {
    case "$1" in
        stfpm) echo STFPM-Paddle ;; padim) echo PaDiM-Paddle ;; kdad) echo KDAD-Paddle ;; sspcab) echo SSPCAB-Paddle ;;
        *) echo "" ;;
    esac
}
