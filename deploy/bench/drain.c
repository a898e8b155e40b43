/* The transfer limit: every row of a query over the client protocol, read and not decoded.
 *
 * drain HOST PORT USER DATABASE QUERY: sends QUERY (text protocol), takes its rows one at a
 * time as they arrive (mysql_use_result: nothing is kept), and prints how many there were.
 * mysql_fetch_row only finds where each field starts; no value is converted or copied, so
 * this is what any client must pay before it does anything with a row. The bench compares
 * highwater's first copy against it. Built by deploy/bench/run.sh with libmariadb.
 */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: drain HOST PORT USER DATABASE QUERY\n");
    return 2;
  }
  MYSQL *db = mysql_init(NULL);
  if (!db || !mysql_real_connect(db, argv[1], argv[3], "", argv[4], (unsigned)atoi(argv[2]), NULL, 0)) {
    fprintf(stderr, "drain: cannot connect: %s\n", db ? mysql_error(db) : "out of memory");
    return 1;
  }
  if (mysql_real_query(db, argv[5], strlen(argv[5])) != 0) {
    fprintf(stderr, "drain: %s\n", mysql_error(db));
    return 1;
  }
  MYSQL_RES *result = mysql_use_result(db);
  if (!result) {
    fprintf(stderr, "drain: no result: %s\n", mysql_error(db));
    return 1;
  }
  unsigned long long rows = 0;
  while (mysql_fetch_row(result)) rows++;
  if (mysql_errno(db) != 0) {
    fprintf(stderr, "drain: after %llu rows: %s\n", rows, mysql_error(db));
    return 1;
  }
  mysql_free_result(result);
  mysql_close(db);
  printf("%llu\n", rows);
  return 0;
}
