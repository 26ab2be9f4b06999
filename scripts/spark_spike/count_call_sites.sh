#!/usr/bin/env bash
# Item 2: rough call-site counts per module of plugins/postsales (grep, so approximate):
#   exec     lines calling .execute( / .exec_driver_sql(
#   core     SQLAlchemy Core constructs: sa.select/insert/delete/update/func/case/and_/or_/literal/..., table.insert()/delete()/update()
#   sqlfile  uses of the include/sql files: warehouse.query / query_frame / sql_text / _text_query
#   writes   partition primitives: replace_rows / replace_from_query / delete_partition / insert_frame
#   text     sa.text( literals
cd "$(dirname "$0")/../.."
printf "%-45s %5s %5s %7s %6s %5s\n" module exec core sqlfile writes text
tot=(0 0 0 0 0)
while read -r f; do
  a=$(grep -cE "\.execute\(|exec_driver_sql\(" "$f"); b=$(grep -oE "sa\.(select|insert|delete|update|func|and_|or_|case|literal|bindparam|tuple_|union_all|exists|not_|cast|null|true|false|column|table|over|between|distinct)\b|\.(insert|delete|update)\(\)" "$f" | wc -l)
  c=$(grep -cE "(warehouse\.)?(query|query_frame|sql_text|_text_query)\((conn|STAGE|\"|')" "$f"); d=$(grep -cE "(replace_rows|replace_from_query|delete_partition|insert_frame)\(" "$f"); e=$(grep -c "sa\.text(" "$f")
  if [ $((a+b+c+d+e)) -gt 0 ]; then printf "%-45s %5s %5s %7s %6s %5s\n" "${f#plugins/postsales/}" $a $b $c $d $e; tot=($((tot[0]+a)) $((tot[1]+b)) $((tot[2]+c)) $((tot[3]+d)) $((tot[4]+e))); fi
done < <(find plugins/postsales -name '*.py' | sort)
printf "%-45s %5s %5s %7s %6s %5s\n" TOTAL "${tot[@]}"
