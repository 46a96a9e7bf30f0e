#!/bin/bash
# Helpers of the PaddlePaddle TIPC "train_infer_python" scripts (format B), without word splitting or
# glob expansion of the values (a value may be a glob such as ./data/*/test/*/*.png).

func_parser_key(){    # "key:value" -> key
    echo "${1%%:*}"
}

func_parser_value(){  # "key:value" -> value
    echo "${1#*:}"
}

func_parser_params(){ # "lite_train_lite_infer=4|whole_train_whole_infer=256" + MODE -> 4 ("a|b" -> a|b)
    local strs=$1 mode=$2 item
    IFS='|' read -r -a items <<< "${strs}"
    for item in "${items[@]}"; do
        if [[ "${item}" == "${mode}="* ]]; then echo "${item#*=}"; return; fi
    done
    [[ "${strs}" == *"="* ]] || echo "${strs}"
}

func_set_params(){    # key value -> "key=value", or " " when either is null/empty
    local key=$1 value=$2
    if [ -z "${key}" ] || [ "${key}" = "null" ] || [ -z "${value}" ] || [ "${value}" = "null" ]; then
        echo " "
    else
        echo "${key}=${value}"
    fi
}

status_check(){       # exit status, command, results log
    local last_status=$1 run_command=$2 run_log=$3
    if [ "${last_status}" -eq 0 ]; then
        echo -e "\033[33m Run successfully with command - ${run_command}!  \033[0m" | tee -a "${run_log}"
    else
        echo -e "\033[33m Run failed with command - ${run_command}!  \033[0m" | tee -a "${run_log}"
    fi
}
