#!/bin/bash
# Helpers of the TIPC format-A scripts (same names and behaviour as PaddleOCR/STFPM-Paddle's common_func.sh).

function func_parser_key(){      # "key:value" -> key
    local strs=$1
    echo "${strs%%:*}"
}

function func_parser_value(){    # "key:value" -> value (everything after the first ':')
    local strs=$1
    echo "${strs#*:}"
}

function func_set_params(){      # key value -> "key=value", or " " when either is null/empty
    local key=$1
    local value=$2
    if [ "${key}" = "null" ] || [ "${value}" = "null" ] || [ -z "${key}" ] || [ -z "${value}" ]; then
        echo " "
    else
        echo "${key}=${value}"
    fi
}

function func_parser_params(){   # "key:mode1=a|mode2=b" MODE -> the value for MODE (a plain value as is)
    local strs=$1
    local mode=$2
    local value
    value=$(func_parser_value "${strs}")
    if [[ "${value}" != *"="* ]]; then
        echo "${value}"
        return
    fi
    local IFS="|"
    local item
    for item in ${value}; do
        if [ "${item%%=*}" = "${mode}" ]; then
            echo "${item#*=}"
            return
        fi
    done
    echo "null"
}

function status_check(){         # exit_code command log: one line per command, the TIPC result format
    local last_status=$1
    local run_command=$2
    local run_log=$3
    if [ "${last_status}" -eq 0 ]; then
        echo -e "\033[33m Run successfully with command - ${run_command}!  \033[0m" | tee -a "${run_log}"
    else
        echo -e "\033[33m Run failed with command - ${run_command}!  \033[0m" | tee -a "${run_log}"
    fi
}
