#!/bin/bash
# Helpers to read TIPC configs (key:value lines) and record results.

func_parser_key() {
    local strs=$1
    IFS=":"
    local array=(${strs})
    echo ${array[0]}
}

func_parser_value() {
    # Everything after the first ':' (values may hold ':' themselves).
    local strs=$1
    echo "${strs#*:}"
}

func_set_params() {
    # "key=value", or a blank when either is null/empty.
    local key=$1
    local value=$2
    if [ "${key}" = "null" ] || [ -z "${key}" ] || [ "${value}" = "null" ] || [ -z "${value}" ]; then
        echo " "
    else
        echo "${key}=${value}"
    fi
}

func_parser_params() {
    # Pick MODE's value from "mode1=a|mode2=b"; a bare value applies to every mode.
    local strs=$1
    local mode=$2
    IFS="|"
    local array=(${strs})
    for item in "${array[@]}"; do
        if [[ "${item}" == "${mode}="* ]]; then
            echo "${item#*=}"
            return
        fi
        if [[ "${item}" != *"="* ]]; then
            echo "${item}"
            return
        fi
    done
    echo "null"
}

status_check() {
    local last_status=$1
    local run_command=$2
    local run_log=$3
    if [ "${last_status}" -eq 0 ]; then
        echo -e "\033[33m Run successfully with command - ${run_command}!  \033[0m" | tee -a "${run_log}"
    else
        echo -e "\033[33m Run failed with command - ${run_command}!  \033[0m" | tee -a "${run_log}"
    fi
}
